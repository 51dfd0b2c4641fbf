"""Many confirmed bookings on one flight, written straight into the database (as the booking
saga would leave them: seat sold, ticket issued, an email contact), and the flight put in the
hub and cancelled: for measuring and testing a disruption of a full flight."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select

from jetbridge.booking import inventory, segments
from jetbridge.booking.identifiers import new_record_locator, ticket_number
from jetbridge.booking.personal_data import PASSENGERS
from jetbridge.booking.tasks import next_serial
from jetbridge.disruption import store
from jetbridge.flights.hub import FlightHub
from jetbridge.flights.merge import Update
from jetbridge.flights.model import FlightIdentity
from jetbridge.storage.schema import bookings, scheduled_flights, tickets


def seed(platform: Any, flight_id: str, count: int, tag: str) -> list[str]:
    """`count` confirmed one-passenger bookings with tickets and an email contact each; their
    addresses."""
    personal = platform.bookings.personal
    addresses = []
    with platform.backbone.transaction() as conn:
        for n in range(count):
            booking_id = str(uuid.uuid4())
            cabin = _cabin(conn, flight_id)
            seats = inventory.hold_seats(
                conn, flight_id=flight_id, cabin=cabin, count=1,
                hold_id=booking_id, ttl=60, now=time.time(),
            )  # fmt: skip
            inventory.confirm_hold(conn, hold_id=booking_id, booking_id=booking_id)
            passengers = [{"given_name": "Pax", "family_name": f"{tag}{n}"}]
            conn.execute(
                insert(bookings).values(
                    booking_id=booking_id, locator=new_record_locator(), status="confirmed",
                    flight_id=flight_id, cabin=cabin, customer_id=f"{tag}-{n}",
                    amount=50_000, currency="CHF", caller="seed", idempotency_key=booking_id,
                    tenant="LX", passengers=personal.seal(booking_id, PASSENGERS, passengers),
                    passenger_count=1, created_at=time.time(), updated_at=time.time(),
                )
            )  # fmt: skip
            segments.set_segments(
                conn, booking_id=booking_id, legs=[segments.Leg(flight_id, cabin)]
            )
            number = ticket_number("724", next_serial(conn))
            conn.execute(
                insert(tickets).values(
                    ticket_number=number, booking_id=booking_id, passenger_index=0,
                    seat=seats[0], issued_at=time.time(),
                )
            )  # fmt: skip
            segments.write_coupons(
                conn, ticket_number=number, booking_id=booking_id,
                seats_by_leg=[(flight_id, seats[0])],
            )  # fmt: skip
            address = f"{tag}-{n}@passengers.example"
            store.set_contacts(conn, personal, booking_id=booking_id, contacts={"email": address})
            addresses.append(address)
    return addresses


def _cabin(conn: Any, flight_id: str) -> str:
    free = inventory.availability(conn, flight_id=flight_id, now=time.time())
    return max(free, key=lambda cabin: (cabin == "economy", free[cabin]))


def cancel(platform: Any, flight_id: str, day: date, origin: str, destination: str) -> float:
    """Put the flight in the hub, then cancel it; the time its cancellation committed."""
    with platform.backbone.reading() as conn:
        departs = conn.execute(
            select(scheduled_flights.c.departs_at).where(scheduled_flights.c.flight_id == flight_id)
        ).scalar_one()
    identity = FlightIdentity.create(
        airline=flight_id[:2], flight_number=flight_id[2:6], origin_date=day,
        departure_airport=origin, arrival_airport=destination,
    )  # fmt: skip
    hub = FlightHub(platform.backbone)
    now = datetime.now(UTC)
    scheduled = datetime.fromtimestamp(departs, UTC).isoformat()
    fields = {"times.off_block.scheduled": scheduled, "status": "scheduled"}
    hub.apply_all([Update(identity, "seed", now, fields)])
    hub.apply_all([Update(identity, "seed", now + timedelta(seconds=1), {"status": "cancelled"})])
    return time.time()
