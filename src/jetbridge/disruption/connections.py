"""Missed connections: the onward flight from the airport a late flight lands at, which now
leaves sooner after the landing than the airport's minimum connection time: the next segment of
a booking holding both flights, or a customer's separate onward booking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from jetbridge.booking import segments
from jetbridge.booking.manifest import bookings_on_flight, catalogue_flight_id
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
    found = _onward_segments(conn, inbound, flight, lands, rules)
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
    for row in rows:
        if row.booking_id not in found and misses_connection(
            arrives=lands,
            onward_departs=datetime.fromtimestamp(row.departs_at, UTC),
            airport=airport,
            rules=rules,
        ):
            found.append(row.booking_id)
    return [{"booking_id": booking_id} for booking_id in found]


def _onward_segments(
    conn: Connection,
    inbound: list[str],
    flight: dict[str, Any],
    lands: datetime,
    rules: DisruptionRules,
) -> list[str]:
    """Bookings holding the late flight and, next in the same booking, a flight from the
    airport it lands at that now leaves too soon (a connection booked as one journey)."""
    flight_id = catalogue_flight_id(conn, str(flight["flight_key"]))
    airport = str(flight["arrival_airport"])
    journeys = segments.segments_by_booking(conn, inbound)
    onward = {}
    for booking_id, legs in journeys.items():
        ids = [leg.flight_id for leg in legs]
        if flight_id in ids and ids.index(flight_id) + 1 < len(ids):
            onward[booking_id] = ids[ids.index(flight_id) + 1]
    if not onward:
        return []
    departs = {
        row.flight_id: row
        for row in conn.execute(
            select(scheduled_flights).where(
                scheduled_flights.c.flight_id.in_(sorted(set(onward.values())))
            )
        )
    }
    return [
        booking_id
        for booking_id in inbound
        if booking_id in onward
        and departs[onward[booking_id]].origin == airport
        and misses_connection(
            arrives=lands,
            onward_departs=datetime.fromtimestamp(departs[onward[booking_id]].departs_at, UTC),
            airport=airport,
            rules=rules,
        )
    ]
