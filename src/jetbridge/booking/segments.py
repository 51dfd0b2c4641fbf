"""A booking's segments (its flights in travel order) and its tickets' coupons (one per segment,
each with the passenger's seat on that flight).

A single-flight booking has one segment and one coupon per ticket; a connection has two. The
booking row's `flight_id` and `cabin` are its first segment's, so code about one flight keeps
reading them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, insert, select, update

from jetbridge.storage.schema import booking_segments, bookings, seats, ticket_coupons


@dataclass(frozen=True, slots=True)
class Leg:
    """One flight of a booking, in one cabin."""

    flight_id: str
    cabin: str

    def to_json(self) -> dict[str, str]:
        return {"flight_id": self.flight_id, "cabin": self.cabin}


def segments_of(conn: Connection, booking_id: str) -> list[Leg]:
    """The booking's flights in travel order."""
    return segments_by_booking(conn, [booking_id]).get(booking_id, [])


def segments_by_booking(conn: Connection, booking_ids: Iterable[str]) -> dict[str, list[Leg]]:
    wanted = list(dict.fromkeys(booking_ids))
    found: dict[str, list[Leg]] = {}
    for start in range(0, len(wanted), 500):
        rows = conn.execute(
            select(booking_segments)
            .where(booking_segments.c.booking_id.in_(wanted[start : start + 500]))
            .order_by(booking_segments.c.booking_id, booking_segments.c.position)
        )
        for row in rows:
            found.setdefault(row.booking_id, []).append(Leg(row.flight_id, row.cabin))
    return found


def set_segments(conn: Connection, *, booking_id: str, legs: Sequence[Leg]) -> None:
    """Make `legs` the booking's flights; the booking row names the first."""
    if not legs:
        raise ValueError("a booking has at least one segment")
    conn.execute(delete(booking_segments).where(booking_segments.c.booking_id == booking_id))
    conn.execute(
        insert(booking_segments),
        [{"booking_id": booking_id, "position": n} | leg.to_json() for n, leg in enumerate(legs)],
    )
    conn.execute(
        update(bookings)
        .where(bookings.c.booking_id == booking_id)
        .values(flight_id=legs[0].flight_id, cabin=legs[0].cabin)
    )


def booking_ids_on(flight_id: str) -> Any:
    """A subquery: the bookings with a segment on this flight."""
    return select(booking_segments.c.booking_id).where(booking_segments.c.flight_id == flight_id)


def write_coupons(
    conn: Connection,
    *,
    ticket_number: str,
    booking_id: str,
    seats_by_leg: Sequence[tuple[str, str]],
) -> None:
    """The ticket's coupons, one per (flight, seat) in travel order, replacing any it had."""
    conn.execute(delete(ticket_coupons).where(ticket_coupons.c.ticket_number == ticket_number))
    conn.execute(
        insert(ticket_coupons),
        [
            {
                "ticket_number": ticket_number,
                "coupon": n,
                "booking_id": booking_id,
                "flight_id": flight_id,
                "seat": seat,
            }
            for n, (flight_id, seat) in enumerate(seats_by_leg, 1)
        ],
    )


def move_coupon(conn: Connection, *, ticket_number: str, flight_id: str, seat: str) -> None:
    """The passenger's seat on one flight of the ticket changed."""
    conn.execute(
        update(ticket_coupons)
        .where(ticket_coupons.c.ticket_number == ticket_number)
        .where(ticket_coupons.c.flight_id == flight_id)
        .values(seat=seat)
    )


def coupons_of(conn: Connection, booking_id: str) -> dict[str, list[dict[str, Any]]]:
    """Per ticket number, its coupons in travel order (coupon number, flight, seat)."""
    rows = conn.execute(
        select(ticket_coupons)
        .where(ticket_coupons.c.booking_id == booking_id)
        .order_by(ticket_coupons.c.ticket_number, ticket_coupons.c.coupon)
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        found.setdefault(row.ticket_number, []).append(
            {"coupon": row.coupon, "flight_id": row.flight_id, "seat": row.seat}
        )
    return found


def sold_seats(conn: Connection, booking_id: str) -> dict[str, list[str]]:
    """The seats sold to the booking, per flight, in seat order."""
    return seats_by_flight(conn, seats.c.booking_id == booking_id, seats.c.status == "sold")


def seats_by_flight(conn: Connection, *where: ColumnElement[bool]) -> dict[str, list[str]]:
    """The seats meeting `where`, per flight, in seat order."""
    rows = conn.execute(
        select(seats.c.flight_id, seats.c.seat)
        .where(*where)
        .order_by(seats.c.flight_id, seats.c.seat)
    )
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row.flight_id, []).append(row.seat)
    return found
