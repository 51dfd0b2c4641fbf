"""Missed connections: a customer's onward booking from the airport a late flight lands at,
which now leaves sooner after the landing than the airport's minimum connection time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from jetbridge.booking.manifest import bookings_on_flight
from jetbridge.disruption.policy import DisruptionRules, arrival_estimate, misses_connection
from jetbridge.storage.schema import bookings, scheduled_flights

# An onward flight counts as a connection when it was scheduled to leave within this time.
CONNECTION_WINDOW = timedelta(hours=24)


def scheduled_arrival(conn: Connection, flight: dict[str, Any]) -> datetime:
    """When the catalogue (else the hub's schedule) has the flight arriving."""
    arrives = conn.execute(
        select(scheduled_flights.c.arrives_at).where(
            scheduled_flights.c.flight_key == str(flight["flight_key"])
        )
    ).scalar()
    if arrives is not None:
        return datetime.fromtimestamp(arrives, UTC)
    on_block = ((flight.get("times") or {}).get("on_block") or {}).get("scheduled")
    if not on_block:
        raise ValueError(f"{flight['flight_key']}: no scheduled arrival is known")
    return datetime.fromisoformat(str(on_block).replace("Z", "+00:00"))


def missed_connections(
    conn: Connection, flight: dict[str, Any], rules: DisruptionRules
) -> list[dict[str, Any]]:
    """Onward bookings that the flight's current arrival estimate makes too tight."""
    inbound = [b.booking_id for b in bookings_on_flight(conn, str(flight["flight_key"]))]
    if not inbound:
        return []
    customers = set(
        conn.execute(
            select(bookings.c.customer_id).where(bookings.c.booking_id.in_(inbound))
        ).scalars()
    )
    try:
        planned = scheduled_arrival(conn, flight)
    except ValueError:
        return []
    lands = arrival_estimate(flight, planned)
    airport = str(flight["arrival_airport"])
    rows = conn.execute(
        select(bookings.c.booking_id, scheduled_flights.c.departs_at)
        .join(scheduled_flights, scheduled_flights.c.flight_id == bookings.c.flight_id)
        .where(
            bookings.c.customer_id.in_(customers),
            bookings.c.status == "confirmed",
            scheduled_flights.c.origin == airport,
            scheduled_flights.c.departs_at >= planned.timestamp(),
            scheduled_flights.c.departs_at <= (planned + CONNECTION_WINDOW).timestamp(),
        )
        .order_by(bookings.c.created_at)
    ).all()
    return [
        {"booking_id": row.booking_id}
        for row in rows
        if misses_connection(
            arrives=lands,
            onward_departs=datetime.fromtimestamp(row.departs_at, UTC),
            airport=airport,
            rules=rules,
        )
    ]
