"""Chosen seats: which seats of a flight are taken, holding the seats a customer picked on the
seat map, and moving a confirmed booking's passengers to other seats."""

from __future__ import annotations

from sqlalchemy import Connection, and_, or_, select, update

from jetbridge.booking import segments
from jetbridge.errors import Conflict
from jetbridge.storage.schema import seats, tickets


def taken_seats(conn: Connection, *, flight_id: str, now: float) -> set[str]:
    """Seats sold or held (a hold whose time ran out counts as free again)."""
    rows = conn.execute(
        select(seats.c.seat).where(
            seats.c.flight_id == flight_id,
            or_(
                seats.c.status == "sold",
                and_(seats.c.status == "held", seats.c.hold_expires_at >= now),
            ),
        )
    )
    return set(rows.scalars())


def _free(flight_id: str, chosen: list[str], now: float) -> object:
    return and_(
        seats.c.flight_id == flight_id,
        seats.c.seat.in_(chosen),
        or_(
            seats.c.status == "free", and_(seats.c.status == "held", seats.c.hold_expires_at < now)
        ),
    )


def hold_chosen(
    conn: Connection, *, flight_id: str, chosen: list[str], hold_id: str, ttl: float, now: float
) -> None:
    """Hold exactly these seats for `ttl` seconds, all or none (`Conflict` names a taken one)."""
    _check_free(conn, flight_id=flight_id, chosen=chosen, now=now, mine=None)
    result = conn.execute(
        update(seats)
        .where(_free(flight_id, chosen, now))  # type: ignore[arg-type]
        .values(status="held", hold_id=hold_id, hold_expires_at=now + ttl, booking_id=None)
    )
    if result.rowcount != len(chosen):
        raise Conflict("seat: a chosen seat was taken a moment ago; choose another seat")


def _check_free(
    conn: Connection, *, flight_id: str, chosen: list[str], now: float, mine: str | None
) -> None:
    rows = conn.execute(
        select(seats.c.seat, seats.c.status, seats.c.hold_expires_at, seats.c.booking_id).where(
            seats.c.flight_id == flight_id, seats.c.seat.in_(chosen)
        )
    ).all()
    state = {row.seat: row for row in rows}
    for index, seat in enumerate(chosen):
        row = state.get(seat)
        if row is None:
            raise Conflict(f"passengers[{index}].seat: {seat} is not for sale on this flight")
        if mine is not None and row.status == "sold" and row.booking_id == mine:
            continue
        expired = row.status == "held" and (row.hold_expires_at or 0) < now
        if row.status != "free" and not expired:
            raise Conflict(f"passengers[{index}].seat: {seat} is taken; choose another seat")


def in_chosen_order(held: list[str], chosen: list[str | None]) -> list[str]:
    """The held seats arranged so that passenger i gets the seat they chose, where they chose."""
    remaining = [seat for seat in sorted(held) if seat not in chosen]
    ordered = []
    for seat in chosen[: len(held)]:
        ordered.append(seat if seat in held else remaining.pop(0))
    return [str(seat) for seat in ordered] + remaining


def reseat(
    conn: Connection, *, booking_id: str, flight_id: str, chosen: list[str], now: float
) -> list[dict[str, object]]:
    """Move a confirmed booking's passengers to the chosen seats (passenger i to chosen[i]):
    seats they leave go back on sale, the tickets name the new seats. Returns the tickets."""
    _check_free(conn, flight_id=flight_id, chosen=chosen, now=now, mine=booking_id)
    conn.execute(
        update(seats)
        .where(
            seats.c.flight_id == flight_id,
            seats.c.booking_id == booking_id,
            seats.c.status == "sold",
            seats.c.seat.not_in(chosen),
        )
        .values(status="free", hold_id=None, booking_id=None)
    )
    taken = conn.execute(
        update(seats)
        .where(_free(flight_id, chosen, now))  # type: ignore[arg-type]
        .values(status="sold", booking_id=booking_id, hold_id=None, hold_expires_at=None)
    )
    mine = conn.execute(
        select(seats.c.seat).where(seats.c.flight_id == flight_id, seats.c.booking_id == booking_id)
    ).scalars()
    if set(mine) != set(chosen):
        raise Conflict(f"seat: a chosen seat was taken a moment ago ({taken.rowcount} free)")
    numbers = {
        row.passenger_index: row.ticket_number
        for row in conn.execute(select(tickets).where(tickets.c.booking_id == booking_id))
    }
    first = segments.segments_of(conn, booking_id)[:1]
    for index, seat in enumerate(chosen):
        if first and first[0].flight_id == flight_id:
            conn.execute(
                update(tickets)
                .where(tickets.c.booking_id == booking_id, tickets.c.passenger_index == index)
                .values(seat=seat)
            )
        if index in numbers:
            segments.move_coupon(conn, ticket_number=numbers[index], flight_id=flight_id, seat=seat)
    return tickets_of(conn, booking_id=booking_id)


def tickets_of(conn: Connection, *, booking_id: str) -> list[dict[str, object]]:
    """Each passenger's ticket: its number, the seat on the first flight, and its coupons (one
    per segment, with the seat on that flight)."""
    rows = conn.execute(
        select(tickets)
        .where(tickets.c.booking_id == booking_id)
        .order_by(tickets.c.passenger_index)
    )
    coupons = segments.coupons_of(conn, booking_id)
    return [
        {
            "ticket_number": r.ticket_number,
            "passenger_index": r.passenger_index,
            "seat": r.seat,
            "coupons": coupons.get(r.ticket_number, []),
        }
        for r in rows
    ]
