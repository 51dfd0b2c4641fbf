"""Outbox atomicity at the service level, idempotent consumers and archive retention."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, insert, select

from jetbridge.app import build_platform
from jetbridge.config import Settings
from jetbridge.events.archive import create_archive, get_archive, purge_expired
from jetbridge.events.consumers import first_time, was_processed
from jetbridge.events.envelope import CloudEvent
from jetbridge.events.specs import ArchiveSpec
from jetbridge.storage.schema import archive_events, events, processed_events


@pytest.fixture
def platform(database_url: str):  # type: ignore[no-untyped-def]
    platform = build_platform(Settings(database_url=database_url, run_workers=False))
    platform.prepare()
    yield platform
    platform.engine.dispose()


def test_a_failed_state_change_takes_its_events_with_it(platform) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError), platform.backbone.transaction() as conn:
        conn.execute(
            insert(processed_events).values(consumer="domain", event_id="row", processed_at=1.0)
        )
        platform.backbone.publish(conn, bus="default", events=[CloudEvent(source="s", type="t")])
        raise RuntimeError("the change is rejected")
    with platform.backbone.reading() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(processed_events)).scalar() == 0


def test_consumers_recognise_redeliveries(platform) -> None:  # type: ignore[no-untyped-def]
    with platform.backbone.transaction() as conn:
        assert first_time(conn, consumer="fids", event_id="e1") is True
        assert first_time(conn, consumer="fids", event_id="e1") is False
        assert first_time(conn, consumer="mqtt", event_id="e1") is True
        assert was_processed(conn, consumer="fids", event_id="e1")


def test_archive_retention_drops_only_expired_events(platform) -> None:  # type: ignore[no-untyped-def]
    with platform.backbone.transaction() as conn:
        create_archive(conn, spec=ArchiveSpec(name="week", bus="default", retention_days=7))
        create_archive(conn, spec=ArchiveSpec(name="forever", bus="default"))
    platform.backbone.put_events(
        bus="default", entries=[{"specversion": "1.0", "source": "s", "type": "t"}]
    )
    now = time.time()
    with platform.backbone.transaction() as conn:
        assert purge_expired(conn, now=now + 6 * 86400) == 0
        assert purge_expired(conn, now=now + 8 * 86400) == 1
        assert get_archive(conn, name="week")["event_count"] == 0
        assert get_archive(conn, name="forever")["event_count"] == 1
        assert conn.execute(select(func.count()).select_from(archive_events)).scalar() == 1
