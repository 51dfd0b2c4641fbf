"""Offers held for a chunk of bookings at once are the offers and seats that holding them one
booking after the other gives, connections included (every leg held under the offer's id); with
fewer seats than counted, the chunk is held one by one, a connection's legs all or none."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from jetbridge.booking.catalog import ScheduleEntry, demo_schedule, import_schedule
from jetbridge.disruption import offers
from jetbridge.storage.db import create_database_engine
from jetbridge.storage.migrate import upgrade
from jetbridge.storage.schema import seats

DAY = date(2026, 12, 1)
CANCELLED = "LX0100-2026-12-01"  # ZRH-LHR; LX0101 and LX0102 fly the route later that day


def MINIMUM(airport: str) -> timedelta:
    return timedelta(minutes=45)


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
        airlines=["LX"], exclude={CANCELLED}, now=now, connection_time=MINIMUM,
    )  # fmt: skip


def positions(group: list[dict[str, Any]]) -> dict[str, list[int]]:
    return {b["booking_id"]: [0] for b in group}


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
                conn,
                booking=b,
                search=found,
                replaces=[0],
                limit=3,
                ttl=600,
                now=now,
                held=[],
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
            conn, bookings=group, search=search(conn, now), replaces=positions(group), limit=3,
            ttl=600, now=now,
            held={b["booking_id"]: [] for b in group},
        )  # fmt: skip
        holds = held_seats(conn)
    assert made == expected
    assert holds == expected_holds
    assert all(made.values()) and len(holds) > len(group)
    again = offers.held_offers_of(engine.connect(), positions(group))
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
            conn, bookings=group, search=found, replaces=positions(group), limit=3, ttl=600,
            now=now,
            held={b["booking_id"]: [] for b in group},
        )  # fmt: skip
        holds = held_seats(conn)
    places = {(o["flight_id"], o["cabin"]) for found in made.values() for o in found}
    assert ("LX0101-2026-12-01", "business") not in places  # gone: offered elsewhere
    assert ("LX0102-2026-12-01", "business") in places
    assert all(made.values())
    assert len(holds) == sum(len(o["seats"]) for found in made.values() for o in found)


# GVA-BCN: the booked LX0900 is cancelled; one direct flight later, and two connections via MUC.
NETWORK = [
    ("900", "GVA-BCN", "09:00", "10:40"),
    ("902", "GVA-BCN", "18:00", "19:40"),
    ("910", "GVA-MUC", "09:30", "10:30"),
    ("922", "MUC-BCN", "12:00", "14:00"),
    ("912", "GVA-MUC", "11:00", "12:00"),
    ("924", "MUC-BCN", "15:00", "17:00"),
]
BOOKED = "LX0900-2026-12-01"


def at(clock: str) -> datetime:
    hour, minute = clock.split(":")
    return datetime(DAY.year, DAY.month, DAY.day, int(hour), int(minute), tzinfo=UTC)


@pytest.fixture
def network(database_url: str) -> Iterator[Engine]:
    engine = create_database_engine(database_url)
    upgrade(engine)
    entries = [
        ScheduleEntry(
            airline="LX", flight_number=number, origin=route[:3], destination=route[4:],
            departure=at(departs), arrival=at(arrives), aircraft_type="A320", currency="CHF",
            fares={"economy": 12_000},
        )
        for number, route, departs, arrives in NETWORK
    ]  # fmt: skip
    with engine.begin() as conn:
        import_schedule(conn, entries)
    yield engine
    engine.dispose()


def travellers(count: int, size: int) -> list[dict[str, Any]]:
    return [
        {"booking_id": f"c{n:03d}", "flight_id": BOOKED, "cabin": "economy",
         "passenger_count": size, "segments": [{"flight_id": BOOKED, "cabin": "economy"}]}
        for n in range(count)
    ]  # fmt: skip


def connections(conn: Any, now: float) -> offers.Search:
    return offers.Search.load(
        conn, origin="GVA", destination="BCN", earliest=at("08:00"), airlines=["LX"],
        exclude={BOOKED}, now=now, connection_time=MINIMUM,
    )  # fmt: skip


def legs_held(conn: Any) -> dict[str, dict[str, int]]:
    """Seats held per offer id and flight."""
    found: dict[str, dict[str, int]] = {}
    for hold, flight, _ in held_seats(conn):
        found.setdefault(hold, {}).setdefault(flight, 0)
        found[hold][flight] += 1
    return found


def test_a_chunk_holds_every_leg_of_its_connections_as_one_booking_after_the_other(
    network: Engine,
) -> None:
    group, now = travellers(8, 2), time.time()
    with network.begin() as conn:
        found = connections(conn, now)
        assert found.pairs  # the network has connections to offer
        expected = {
            b["booking_id"]: offers.hold_offers(
                conn, booking=b, search=found, replaces=[0], limit=3, ttl=600, now=now, held=[]
            )
            for b in group
        }
        expected_holds = held_seats(conn)
        conn.rollback()
    with network.begin() as conn:
        made = offers.hold_offers_many(
            conn, bookings=group, search=connections(conn, now), replaces=positions(group),
            limit=3, ttl=600, now=now, held={b["booking_id"]: [] for b in group},
        )  # fmt: skip
        holds = held_seats(conn)
        per_offer = legs_held(conn)
    assert made == expected
    assert holds == expected_holds
    via = [o for found in made.values() for o in found if o["via"] == "MUC"]
    assert via, "connections were offered"
    for offer in via:
        assert [leg["origin"] for leg in offer["legs"]] == ["GVA", "MUC"]
        assert all(len(leg["seats"]) == 2 for leg in offer["legs"])
    for booking_id, found_offers in made.items():
        for offer in found_offers:
            hold = offers.hold_id(booking_id, offer["offer"])
            assert per_offer[hold] == {leg["flight_id"]: 2 for leg in offer["legs"]}
    again = offers.held_offers_of(network.connect(), positions(group))
    assert again == made


def test_a_connection_short_of_seats_on_one_leg_is_held_on_no_leg(network: Engine) -> None:
    group, now = travellers(4, 2), time.time()
    second = "LX0922-2026-12-01"
    with network.begin() as conn:
        found = connections(conn, now)  # counted before a buyer takes all but one seat
        free = (
            conn.execute(
                select(seats.c.seat).where(seats.c.flight_id == second, seats.c.status == "free")
            )
            .scalars()
            .all()
        )
        conn.execute(
            update(seats)
            .where(seats.c.flight_id == second, seats.c.seat.in_(free[1:]))
            .values(status="sold", booking_id="someone")
        )
        made = offers.hold_offers_many(
            conn, bookings=group, search=found, replaces=positions(group), limit=3, ttl=600,
            now=now, held={b["booking_id"]: [] for b in group},
        )  # fmt: skip
        per_offer = legs_held(conn)
    assert all(made.values())
    for booking_id, found_offers in made.items():
        for offer in found_offers:
            assert second not in {leg["flight_id"] for leg in offer["legs"]}
            hold = offers.hold_id(booking_id, offer["offer"])
            assert per_offer[hold] == {leg["flight_id"]: 2 for leg in offer["legs"]}
    assert {flight for legs in per_offer.values() for flight in legs} >= {"LX0924-2026-12-01"}
    assert sum(len(legs) for legs in per_offer.values()) == sum(
        len(o["legs"]) for found_offers in made.values() for o in found_offers
    )
