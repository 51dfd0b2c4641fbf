"""Reissuing a booking's tickets after its flights changed (a passenger's own change, or a
rebooking after a disruption): each passenger gets a new ticket number with a coupon per
segment, and the old number is kept as exchanged for the new one."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from jetbridge.booking import segments
from jetbridge.booking.identifiers import ticket_number
from jetbridge.booking.tasks import next_serial
from jetbridge.storage.schema import ticket_coupons, ticket_reissues, tickets

VOLUNTARY = "voluntary change"
INVOLUNTARY = "involuntary rebooking"


def reissue_tickets(
    conn: Connection,
    *,
    booking_id: str,
    coupons: Sequence[Sequence[tuple[str, str]]],
    accounting_code: str,
    reason: str,
) -> list[dict[str, Any]]:
    """New numbers for the booking's tickets: passenger i's coupons are `coupons[i]`, each a
    (flight id, seat) in travel order. The tickets as reissued, with the numbers they replace."""
    rows = conn.execute(
        select(tickets)
        .where(tickets.c.booking_id == booking_id)
        .order_by(tickets.c.passenger_index)
    ).all()
    reissued = []
    now = time.time()
    for row in rows:
        legs = list(coupons[row.passenger_index])
        number = ticket_number(accounting_code, next_serial(conn))
        conn.execute(
            update(tickets)
            .where(tickets.c.ticket_number == row.ticket_number)
            .values(ticket_number=number, seat=legs[0][1], issued_at=now)
        )
        old = ticket_coupons.c.ticket_number == row.ticket_number
        conn.execute(delete(ticket_coupons).where(old))
        segments.write_coupons(conn, ticket_number=number, booking_id=booking_id, seats_by_leg=legs)
        conn.execute(
            insert(ticket_reissues).values(
                old_ticket=row.ticket_number,
                new_ticket=number,
                booking_id=booking_id,
                passenger_index=row.passenger_index,
                flight_id=legs[0][0],
                reason=reason,
                at=now,
            )
        )
        reissued.append(
            {
                "passenger_index": row.passenger_index,
                "previous_ticket_number": row.ticket_number,
                "ticket_number": number,
                "seat": legs[0][1],
                "coupons": [
                    {"coupon": n, "flight_id": flight_id, "seat": seat}
                    for n, (flight_id, seat) in enumerate(legs, 1)
                ],
            }
        )
    return reissued


def reissue_for_journey(
    conn: Connection,
    *,
    booking_id: str,
    legs: Sequence[segments.Leg],
    passengers: int,
    accounting_code: str,
    reason: str,
) -> list[dict[str, Any]]:
    """The booking now travels on `legs` (its seats already sold on them): its segments become
    those legs and its tickets are reissued with a coupon per leg."""
    coupons = coupons_for(conn, booking_id=booking_id, legs=legs, passengers=passengers)
    segments.set_segments(conn, booking_id=booking_id, legs=legs)
    return reissue_tickets(
        conn,
        booking_id=booking_id,
        coupons=coupons,
        accounting_code=accounting_code,
        reason=reason,
    )


def coupons_for(
    conn: Connection, *, booking_id: str, legs: Sequence[segments.Leg], passengers: int
) -> list[list[tuple[str, str]]]:
    """Each passenger's (flight, seat) per leg from the seats sold to the booking now: a leg
    kept from before keeps each passenger's seat, a new leg's seats go in seat order."""
    before = segments.coupons_of(conn, booking_id)
    numbers = conn.execute(
        select(tickets.c.passenger_index, tickets.c.ticket_number).where(
            tickets.c.booking_id == booking_id
        )
    ).all()
    by_passenger = {row.passenger_index: before.get(row.ticket_number, []) for row in numbers}
    sold = segments.sold_seats(conn, booking_id)
    coupons: list[list[tuple[str, str]]] = [[] for _ in range(passengers)]
    for leg in legs:
        kept = [_seat_on(by_passenger.get(i, []), leg.flight_id) for i in range(passengers)]
        if all(seat in sold.get(leg.flight_id, []) for seat in kept):
            seats = [str(seat) for seat in kept]
        else:
            seats = sold.get(leg.flight_id, [])
        if len(seats) < passengers:
            raise ValueError(f"{leg.flight_id}: {len(seats)} seat(s) sold, {passengers} needed")
        for index in range(passengers):
            coupons[index].append((leg.flight_id, seats[index]))
    return coupons


def _seat_on(coupons: list[dict[str, Any]], flight_id: str) -> str | None:
    return next((str(c["seat"]) for c in coupons if c["flight_id"] == flight_id), None)


def exchanged_tickets(conn: Connection, *, booking_id: str) -> list[dict[str, Any]]:
    """The booking's earlier ticket numbers, each with the number it was exchanged for."""
    rows = conn.execute(
        select(ticket_reissues)
        .where(ticket_reissues.c.booking_id == booking_id)
        .order_by(ticket_reissues.c.at, ticket_reissues.c.passenger_index)
    )
    return [
        {
            "ticket_number": row.old_ticket,
            "status": "exchanged",
            "exchanged_for": row.new_ticket,
            "passenger_index": row.passenger_index,
            "reason": row.reason,
            "at": datetime.fromtimestamp(row.at, UTC).isoformat(),
        }
        for row in rows
    ]
