"""Which stretch of a booking's journey a disruption takes away: from the disrupted segment
(or, for a missed connection, the onward segment) to the journey's end. Re-accommodation
replaces that stretch with a direct flight or a connection and keeps the segments before it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from jetbridge.booking import segments
from jetbridge.booking.manifest import catalogue_flight_id
from jetbridge.disruption.policy import MISSED_CONNECTION
from jetbridge.flights.hub import get_flight
from jetbridge.storage.schema import scheduled_flights


@dataclass(frozen=True, slots=True)
class Stretch:
    """The segments replaced (`replaces`, positions), from where to where, and the catalogue
    row of the first replaced flight."""

    legs: list[segments.Leg]
    replaces: list[int]
    origin: str
    destination: str
    first: Any


def disrupted_stretch(
    conn: Connection, booking: dict[str, Any], *, kind: str, flight_key: str
) -> Stretch:
    return disrupted_stretches(conn, [booking], kind=kind, flight_key=flight_key)[
        booking["booking_id"]
    ]


def disrupted_stretches(
    conn: Connection, bookings: Sequence[dict[str, Any]], *, kind: str, flight_key: str
) -> dict[str, Stretch]:
    """Each booking's disrupted stretch, by booking: their segments and flights read together."""
    if not bookings:
        return {}
    found = segments.segments_by_booking(conn, [booking["booking_id"] for booking in bookings])
    journeys = {
        booking["booking_id"]: found.get(booking["booking_id"])
        or [segments.Leg(booking["flight_id"], booking["cabin"])]
        for booking in bookings
    }
    wanted = sorted({leg.flight_id for legs in journeys.values() for leg in legs})
    rows = {
        row.flight_id: row
        for row in conn.execute(
            select(scheduled_flights).where(scheduled_flights.c.flight_id.in_(wanted))
        )
    }
    disrupted = catalogue_flight_id(conn, flight_key)
    stretches = {}
    for booking_id, legs in journeys.items():
        flight_ids = [leg.flight_id for leg in legs]
        start = flight_ids.index(disrupted) if disrupted in flight_ids else 0
        if kind == MISSED_CONNECTION:
            start = _onward(conn, flight_ids, rows, disrupted, flight_key)
        first = rows[flight_ids[start]]
        stretches[booking_id] = Stretch(
            legs=legs,
            replaces=list(range(start, len(legs))),
            origin=first.origin,
            destination=rows[flight_ids[-1]].destination,
            first=first,
        )
    return stretches


def _onward(
    conn: Connection, flight_ids: list[str], rows: dict[str, Any], inbound: str | None, key: str
) -> int:
    """The segment leaving the airport the late inbound flight lands at: the next one when the
    inbound flight is in this booking, else the booking's first one from that airport."""
    if inbound in flight_ids:
        return min(flight_ids.index(inbound) + 1, len(flight_ids) - 1)
    landing = (get_flight(conn, key) or {}).get("arrival_airport")
    for position, flight_id in enumerate(flight_ids):
        if rows[flight_id].origin == landing:
            return position
    return 0
