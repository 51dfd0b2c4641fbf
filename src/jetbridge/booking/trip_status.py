"""The live status of the flight a booking is on, read from the flight hub by the flight's one
identity (the catalogue's `flight_key`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from jetbridge.flights.hub import get_flight
from jetbridge.flights.model import FlightIdentity
from jetbridge.flights.passenger_view import trip_flight
from jetbridge.storage.schema import scheduled_flights


def flight_statuses(conn: Connection, flight_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Per catalogue flight id, what the trip shows of it: the hub's live view, or the
    catalogue's schedule while the hub has not heard of the flight."""
    wanted = sorted(set(flight_ids))
    if not wanted:
        return {}
    rows = conn.execute(select(scheduled_flights).where(scheduled_flights.c.flight_id.in_(wanted)))
    statuses = {}
    for row in rows:
        view = get_flight(conn, row.flight_key) or _from_catalogue(row)
        statuses[row.flight_id] = trip_flight(view)
    return statuses


def with_flight_status(conn: Connection, bookings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bookings, each with `flight_key` and `flight_status` (of its first flight) added, and
    the same on each of its `segments` when it has them."""
    wanted = [b["flight_id"] for b in bookings]
    wanted += [s["flight_id"] for b in bookings for s in b.get("segments", [])]
    statuses = flight_statuses(conn, wanted)
    for item in [*bookings, *(s for b in bookings for s in b.get("segments", []))]:
        status = statuses.get(item["flight_id"])
        item["flight_key"] = status["flight_key"] if status else None
        item["flight_status"] = status
    return bookings


def _from_catalogue(row: Any) -> dict[str, Any]:
    identity = FlightIdentity.create(
        airline=row.airline, flight_number=row.flight_number, origin_date=row.departure_date,
        departure_airport=row.origin, arrival_airport=row.destination,
    )  # fmt: skip

    def iso(seconds: float) -> str:
        return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")

    return {
        "flight_key": row.flight_key,
        "flight": identity.display_number,
        **identity.to_json(),
        "version": 0,
        "status": "scheduled",
        "times": {
            "off_block": {"scheduled": iso(row.departs_at)},
            "on_block": {"scheduled": iso(row.arrives_at)},
        },
        "delays": [],
    }
