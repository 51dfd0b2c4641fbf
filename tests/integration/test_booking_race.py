"""2,000 concurrent booking attempts for the last 100 seats, on PostgreSQL."""

from __future__ import annotations

import concurrent.futures
import time
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from jetbridge.app import create_app
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.booking.service import BookingRequest, Passenger
from jetbridge.config import Settings
from jetbridge.payments.test_provider import APPROVE, Ledger, create_test_provider
from jetbridge.storage.schema import bookings, payments, seats, tickets
from support.servers import serve_app

ATTEMPTS = 2000
LAST_SEATS = 100


def test_two_thousand_buyers_for_the_last_hundred_seats(postgres_url: str) -> None:
    day = (datetime.now(UTC) + timedelta(days=30)).date()
    flight = f"LX0101-{day.isoformat()}"
    ledger = Ledger()
    with serve_app(create_test_provider(ledger)) as provider_url:
        settings = Settings(
            database_url=postgres_url,
            payments_url=provider_url,
            workflow_workers=16,
            delivery_poll_seconds=0.2,
        )
        app = create_app(settings)
        with TestClient(app):
            platform = app.state.platform
            with platform.backbone.transaction() as conn:
                import_schedule(conn, demo_schedule(start=day, days=1))
                free = list(
                    conn.execute(
                        select(seats.c.seat)
                        .where(seats.c.flight_id == flight, seats.c.cabin == "economy")
                        .order_by(seats.c.seat)
                    ).scalars()
                )
                conn.execute(
                    update(seats)
                    .where(seats.c.flight_id == flight, seats.c.seat.in_(free[LAST_SEATS:]))
                    .values(status="sold", booking_id="earlier")
                )

            def attempt(n: int) -> str:
                request = BookingRequest(
                    flight_id=flight,
                    cabin="economy",
                    customer_id=f"c{n}",
                    passengers=[Passenger(given_name="Pax", family_name=f"N{n}")],
                )
                booking, _ = platform.bookings.create(
                    request=request, card=APPROVE, caller=f"c{n}", idempotency_key=f"race-{n:06d}"
                )
                return str(booking["booking_id"])

            with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
                ids = list(pool.map(attempt, range(ATTEMPTS)))
            assert len(set(ids)) == ATTEMPTS
            deadline = time.time() + 600
            while time.time() < deadline:
                running = len(platform.workflows.list(status="RUNNING", limit=10))
                if running == 0:
                    break
                time.sleep(0.5)
            with platform.backbone.reading() as conn:
                statuses = dict(
                    conn.execute(
                        select(bookings.c.status, func.count()).group_by(bookings.c.status)
                    ).all()
                )
                sold = conn.execute(
                    select(seats.c.seat, seats.c.booking_id).where(
                        seats.c.flight_id == flight,
                        seats.c.booking_id != "earlier",
                        seats.c.status == "sold",
                    )
                ).all()
                held = conn.execute(
                    select(func.count()).where(
                        seats.c.flight_id == flight, seats.c.status == "held"
                    )
                ).scalar()
                ticketed = conn.execute(select(func.count()).select_from(tickets)).scalar()
                captured = conn.execute(
                    select(func.count()).where(payments.c.status == "captured")
                ).scalar()
                payment_states = dict(
                    conn.execute(
                        select(payments.c.status, func.count()).group_by(payments.c.status)
                    ).all()
                )
                failures = dict(
                    conn.execute(
                        select(bookings.c.failure, func.count())
                        .where(bookings.c.status == "failed")
                        .group_by(bookings.c.failure)
                    ).all()
                )
    assert statuses == {"confirmed": LAST_SEATS, "failed": ATTEMPTS - LAST_SEATS}
    assert payment_states == {"captured": LAST_SEATS}
    assert set(failures) == {"only 0 economy seat(s) left on " + flight + ", 1 requested"}
    assert len(sold) == LAST_SEATS
    assert len({seat for seat, _ in sold}) == LAST_SEATS
    assert len({booking for _, booking in sold}) == LAST_SEATS
    assert held == 0
    assert ticketed == LAST_SEATS
    assert captured == LAST_SEATS
    assert sum(1 for i in ledger.intents.values() if i["status"] == "succeeded") == LAST_SEATS, (
        payment_states
    )
    assert all(i["status"] in {"succeeded", "canceled"} for i in ledger.intents.values())
