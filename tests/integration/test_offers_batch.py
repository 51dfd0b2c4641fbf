"""Offers held for a chunk of bookings at once are the offers and seats that holding them one
booking after the other gives; with fewer seats than counted, the chunk is held one by one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.disruption import offers
from jetbridge.storage.db import create_database_engine
from jetbridge.storage.migrate import upgrade
from jetbridge.storage.schema import seats

DAY = date(2026, 12, 1)
CANCELLED = "LX0100-2026-12-01"  # ZRH-LHR; LX0101 and LX0102 fly the route later that day


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_database_engine(database_url)
    upgrade(engine)
    with engine.begin() as conn:
        import_schedule(conn, demo_schedule(start=DAY, days=1))
    yield engine
    engine.dispose()


def bookings(count: int) -> list[dict[str, Any]]:
    return [
        {"booking_id": f"b{n:03d}", "flight_id": CANCELLED, "cabin": "business",
         "passenger_count": 1 + n % 2}
        for n in range(count)
    ]  # fmt: skip


def search(conn: Any, now: float) -> offers.Search:
    return offers.Search.load(
        conn, origin="ZRH", destination="LHR", earliest=datetime(2026, 12, 1, tzinfo=UTC),
        airlines=["LX"], exclude={CANCELLED}, now=now,
    )  # fmt: skip


def held_seats(conn: Any) -> list[tuple[str, str, str]]:
    rows = conn.execute(
        select(seats.c.hold_id, seats.c.flight_id, seats.c.seat).where(seats.c.status == "held")
    ).all()
    return sorted((row[0], row[1], row[2]) for row in rows)


def one_by_one(engine: Engine, group: list[dict[str, Any]], now: float) -> Any:
    with engine.begin() as conn:
        found = search(conn, now)
        made = {
            b["booking_id"]: offers.hold_offers(
                conn, booking=b, search=found, limit=3, ttl=600, now=now, held=[]
            )
            for b in group
        }
        holds = held_seats(conn)
        conn.rollback()
    return made, holds


def test_a_chunk_gets_the_offers_and_seats_of_one_booking_after_the_other(
    engine: Engine,
) -> None:
    group, now = bookings(12), time.time()
    expected, expected_holds = one_by_one(engine, group, now)
    with engine.begin() as conn:
        made = offers.hold_offers_many(
            conn, bookings=group, search=search(conn, now), limit=3, ttl=600, now=now,
            held={b["booking_id"]: [] for b in group},
        )  # fmt: skip
        holds = held_seats(conn)
    assert made == expected
    assert holds == expected_holds
    assert all(made.values()) and len(holds) > len(group)
    again = offers.held_offers_of(engine.connect(), [b["booking_id"] for b in group])
    assert again == made  # what a retried step finds


def test_with_fewer_seats_than_counted_the_chunk_is_held_one_by_one(engine: Engine) -> None:
    group, now = bookings(6), time.time()
    with engine.begin() as conn:
        found = search(conn, now)  # counted before a buyer takes a flight's business seats
        taken = conn.execute(
            update(seats)
            .where(seats.c.flight_id == "LX0101-2026-12-01", seats.c.cabin == "business")
            .values(status="sold", booking_id="someone")
        ).rowcount
        assert taken > 0
        made = offers.hold_offers_many(
            conn, bookings=group, search=found, limit=3, ttl=600, now=now,
            held={b["booking_id"]: [] for b in group},
        )  # fmt: skip
        holds = held_seats(conn)
    places = {(o["flight_id"], o["cabin"]) for found in made.values() for o in found}
    assert ("LX0101-2026-12-01", "business") not in places  # gone: offered elsewhere
    assert ("LX0102-2026-12-01", "business") in places
    assert all(made.values())
    assert len(holds) == sum(len(o["seats"]) for found in made.values() for o in found)
