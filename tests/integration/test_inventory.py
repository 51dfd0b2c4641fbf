"""Seat inventory on SQLite and PostgreSQL: holds expire, no seat is ever sold twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, func, select, text

from jetbridge.booking.catalog import (
    ScheduleEntry,
    current_fare,
    demo_schedule,
    import_schedule,
    search,
)
from jetbridge.booking.inventory import (
    SoldOut,
    confirm_hold,
    free_seats,
    hold_seats,
    release_hold,
)
from jetbridge.storage.db import create_database_engine
from jetbridge.storage.migrate import upgrade
from jetbridge.storage.schema import seats


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_database_engine(database_url)
    upgrade(engine)
    with engine.begin() as conn:
        import_schedule(conn, demo_schedule(start=date(2026, 12, 1), days=1))
    yield engine
    engine.dispose()


FLIGHT = "LX0100-2026-12-01"


def test_search_finds_flights_with_fares_and_seats(engine: Engine) -> None:
    with engine.connect() as conn:
        offers = search(
            conn, origin="ZRH", destination="LHR", day=date(2026, 12, 1), now=time.time()
        )
    assert [o["flight_id"] for o in offers] == [
        "LX0100-2026-12-01",
        "LX0101-2026-12-01",
        "LX0102-2026-12-01",
    ]
    assert offers[0]["cabins"]["economy"]["seats_left"] == 156
    assert offers[0]["cabins"]["economy"]["fare"]["currency"] == "CHF"


def test_hold_confirm_release_and_expiry(engine: Engine) -> None:
    now = time.time()
    with engine.begin() as conn:
        held = hold_seats(
            conn, flight_id=FLIGHT, cabin="business", count=2, hold_id="h1", ttl=60, now=now
        )
        assert held == ["1A", "1C"]
        other = hold_seats(
            conn, flight_id=FLIGHT, cabin="business", count=1, hold_id="h2", ttl=60, now=now
        )
        assert other == ["1D"]
        assert confirm_hold(conn, hold_id="h1", booking_id="b1") == ["1A", "1C"]
        assert release_hold(conn, hold_id="h2") == 1
        assert release_hold(conn, hold_id="h2") == 0
        hold_seats(conn, flight_id=FLIGHT, cabin="business", count=14, hold_id="h3", ttl=1, now=now)
        with pytest.raises(SoldOut):
            hold_seats(
                conn, flight_id=FLIGHT, cabin="business", count=1, hold_id="h4", ttl=60, now=now
            )
        later = hold_seats(
            conn, flight_id=FLIGHT, cabin="business", count=1, hold_id="h5", ttl=60, now=now + 5
        )
        assert later == ["1D"]


def test_concurrent_buyers_never_share_a_seat(engine: Engine) -> None:
    won: list[str] = []
    lost = 0
    lock = threading.Lock()

    def buyer(n: int) -> None:
        nonlocal lost
        try:
            with engine.begin() as conn:
                taken = hold_seats(
                    conn,
                    flight_id=FLIGHT,
                    cabin="business",
                    count=1,
                    hold_id=f"h{n}",
                    ttl=60,
                    now=time.time(),
                )
                confirm_hold(conn, hold_id=f"h{n}", booking_id=f"b{n}")
            with lock:
                won.extend(taken)
        except SoldOut:
            with lock:
                lost += 1

    threads = [threading.Thread(target=buyer, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 16
    assert len(set(won)) == 16
    assert lost == 24
    with engine.connect() as conn:
        sold = conn.execute(
            select(func.count()).where(
                seats.c.flight_id == FLIGHT, seats.c.status == "sold", seats.c.cabin == "business"
            )
        ).scalar()
    assert sold == 16


def test_fares_rise_with_load_factor() -> None:
    assert current_fare(base=10_000, capacity=100, left=100) == 10_000
    assert current_fare(base=10_000, capacity=100, left=50) == 15_000
    assert current_fare(base=10_000, capacity=100, left=0) == 20_000


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"origin": "zrh"}, "origin"),
        ({"arrival": datetime(2026, 12, 1, 6, tzinfo=UTC)}, "arrival"),
        ({"departure": "2026-12-01T07:00:00"}, "UTC offset"),
        ({"fares": {"first": 100}}, "cabins"),
        ({"fares": {"economy": -5}}, "fares"),
        ({"price": 1}, "price"),
    ],
)
def test_bad_schedule_entries_are_rejected(change: dict[str, object], fragment: str) -> None:
    entry = {
        "airline": "LX", "flight_number": "100", "origin": "ZRH", "destination": "LHR",
        "departure": "2026-12-01T07:00:00Z", "arrival": "2026-12-01T08:40:00Z",
        "aircraft_type": "A320", "currency": "CHF", "fares": {"economy": 9900},
    }  # fmt: skip
    with pytest.raises(ValidationError, match=fragment):
        ScheduleEntry.model_validate(entry | change)


def _waiting_on_a_row_lock(engine: Engine) -> bool:
    with engine.connect() as conn:
        waiting = conn.execute(
            text("SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'")
        ).scalar_one()
    return bool(waiting)


@pytest.mark.parametrize("first_ends", ["rollback", "commit"])
@pytest.mark.parametrize("count", [1, 2])
def test_a_buyer_waits_for_seats_another_buyer_is_taking_before_being_refused(
    postgres_url: str, first_ends: str, count: int
) -> None:
    """A seat is locked by a buyer whose transaction is still open, and without it too few are
    left: a second buyer is not refused at once (the first may roll back), gets the seats if it
    does, and is told the true count if it commits."""
    engine = create_database_engine(postgres_url)
    upgrade(engine)
    now = time.time()
    with engine.begin() as conn:
        import_schedule(conn, demo_schedule(start=date(2026, 12, 1), days=1))
        hold_seats(
            conn, flight_id=FLIGHT, cabin="business", count=16 - count, hold_id="rest",
            ttl=3600, now=now,
        )  # fmt: skip
        on_sale = free_seats(conn, flight_id=FLIGHT, cabin="business", count=16, now=now)
    assert len(on_sale) == count
    outcome: dict[str, object] = {}

    def second_buyer() -> None:
        try:
            with engine.begin() as conn:
                outcome["held"] = hold_seats(
                    conn, flight_id=FLIGHT, cabin="business", count=count, hold_id="second",
                    ttl=60, now=time.time(),
                )  # fmt: skip
        except SoldOut as exc:
            outcome["refused"] = str(exc)

    first = engine.connect()
    transaction = first.begin()
    try:
        taken = hold_seats(
            first, flight_id=FLIGHT, cabin="business", count=1, hold_id="first", ttl=60,
            now=time.time(),
        )  # fmt: skip
        assert taken == on_sale[:1]
        buyer = threading.Thread(target=second_buyer)
        buyer.start()
        deadline = time.monotonic() + 60
        while not _waiting_on_a_row_lock(engine):
            assert buyer.is_alive(), f"the second buyer did not wait: {outcome}"
            assert time.monotonic() < deadline, "the second buyer never waited on the seat"
            time.sleep(0.02)
        assert outcome == {}
        if first_ends == "rollback":
            transaction.rollback()
        else:
            transaction.commit()
    finally:
        first.close()
    buyer.join(60)
    assert not buyer.is_alive()
    engine.dispose()
    if first_ends == "rollback":
        assert outcome == {"held": on_sale}
    else:
        left = count - 1
        assert outcome == {
            "refused": f"only {left} business seat(s) left on {FLIGHT}, {count} requested"
        }


def test_buyers_waiting_on_each_others_seats_are_refused_not_failed(postgres_url: str) -> None:
    """Two journeys each hold the last seat of one flight and then want the other's: their
    waits form a cycle the server breaks; the buyer it picks is refused with the seats nobody
    has (none), not failed with a database error, and the other gets its answer when the
    first ends."""
    engine = create_database_engine(postgres_url)
    upgrade(engine)
    now = time.time()
    flights = [FLIGHT, "LX0101-2026-12-01"]
    with engine.begin() as conn:
        import_schedule(conn, demo_schedule(start=date(2026, 12, 1), days=1))
        for flight in flights:
            hold_seats(
                conn, flight_id=flight, cabin="business", count=15, hold_id=f"rest-{flight}",
                ttl=3600, now=now,
            )  # fmt: skip
    both_hold_one = threading.Barrier(2, timeout=60)
    outcome: dict[str, object] = {}

    def journey(mine: str, theirs: str) -> None:
        with engine.begin() as conn:
            hold_seats(
                conn, flight_id=mine, cabin="business", count=1, hold_id=f"j-{mine}", ttl=60,
                now=time.time(),
            )  # fmt: skip
            both_hold_one.wait()
            try:
                hold_seats(
                    conn, flight_id=theirs, cabin="business", count=1, hold_id=f"j-{mine}",
                    ttl=60, now=time.time(),
                )  # fmt: skip
                outcome[mine] = "held"
            except SoldOut as exc:
                outcome[mine] = str(exc)
            except Exception as exc:
                outcome[mine] = f"failed: {exc!r}"

    threads = [threading.Thread(target=journey, args=pair) for pair in (flights, flights[::-1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    engine.dispose()
    assert outcome == {
        mine: f"only 0 business seat(s) left on {theirs}, 1 requested"
        for mine, theirs in (flights, flights[::-1])
    }
