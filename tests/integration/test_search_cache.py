"""Flight search through the Redis cache, and without Redis when it is down."""

from __future__ import annotations

import uuid
from datetime import date

from jetbridge.app import build_platform
from jetbridge.booking.cache import RedisSearchCache
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.booking.facade import Bookings
from jetbridge.config import Settings

DAY = date(2026, 12, 5)


def test_searches_are_cached_for_a_few_seconds(redis_url: str, sqlite_url: str) -> None:
    platform = build_platform(Settings(database_url=sqlite_url, run_workers=False))
    platform.prepare()
    with platform.backbone.transaction() as conn:
        import_schedule(conn, demo_schedule(start=DAY, days=1))
    cache = RedisSearchCache(redis_url, prefix=f"test-{uuid.uuid4().hex}:")
    assert platform.bookings is not None
    bookings = Bookings(
        backbone=platform.backbone,
        tasks=platform.bookings.tasks,
        start_saga=lambda *_: None,
        personal=platform.bookings.personal,
        cache=cache,
    )
    first = bookings.search(origin="ZRH", destination="LHR", day=DAY)
    assert cache.get(f"search:ZRH:LHR:{DAY.isoformat()}") is not None
    with platform.backbone.transaction() as conn:
        from sqlalchemy import delete

        from jetbridge.storage.schema import scheduled_flights

        conn.execute(delete(scheduled_flights))
    assert (
        bookings.search(origin="ZRH", destination="LHR", day=DAY) == first
    )  # served from the cache
    cache.close()
    platform.engine.dispose()


def test_an_unreachable_redis_is_only_a_missed_cache() -> None:
    cache = RedisSearchCache("redis://127.0.0.1:1/0")
    assert cache.get("x") is None
    cache.set("x", "y", ttl=5)
