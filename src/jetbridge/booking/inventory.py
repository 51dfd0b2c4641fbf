"""Seat inventory: holds that expire, confirmation and release, safe under concurrent buyers.

On PostgreSQL concurrent holds lock distinct rows (`FOR UPDATE SKIP LOCKED`); on SQLite the
write transaction is exclusive. A seat is sold at most once: it moves free/expired → held → sold
only through these functions, each guarded by its current status and hold id.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select, update

from jetbridge.storage.schema import seats


class SoldOut(Exception):
    """Not enough seats left in the cabin."""


def _available(flight_id: str, cabin: str, now: float) -> ColumnElement[bool]:
    return and_(
        seats.c.flight_id == flight_id,
        seats.c.cabin == cabin,
        or_(
            seats.c.status == "free", and_(seats.c.status == "held", seats.c.hold_expires_at < now)
        ),
    )


def hold_seats(
    conn: Connection,
    *,
    flight_id: str,
    cabin: str,
    count: int,
    hold_id: str,
    ttl: float,
    now: float,
) -> list[str]:
    """Hold `count` seats for `ttl` seconds, front rows first; all or nothing."""
    query = (
        select(seats.c.seat)
        .where(_available(flight_id, cabin, now))
        .order_by(seats.c.seat)
        .limit(count)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    chosen = list(conn.execute(query).scalars())
    if len(chosen) < count:
        raise SoldOut(f"only {len(chosen)} {cabin} seat(s) left on {flight_id}, {count} requested")
    result = conn.execute(
        update(seats)
        .where(seats.c.flight_id == flight_id, seats.c.seat.in_(chosen))
        .where(_available(flight_id, cabin, now))
        .values(status="held", hold_id=hold_id, hold_expires_at=now + ttl, booking_id=None)
    )
    if result.rowcount != count:
        raise SoldOut(f"seats on {flight_id} were taken concurrently")
    return chosen


def confirm_hold(conn: Connection, *, hold_id: str, booking_id: str) -> list[str]:
    """Sell the seats of a hold (even if its time ran out, as long as nobody took them)."""
    held = list(
        conn.execute(
            select(seats.c.seat).where(seats.c.hold_id == hold_id, seats.c.status == "held")
        ).scalars()
    )
    conn.execute(
        update(seats)
        .where(seats.c.hold_id == hold_id, seats.c.status == "held")
        .values(status="sold", booking_id=booking_id, hold_expires_at=None)
    )
    return held


def release_hold(conn: Connection, *, hold_id: str) -> int:
    """Free a hold's seats; releasing twice, or after expiry, is harmless."""
    result = conn.execute(
        update(seats)
        .where(seats.c.hold_id == hold_id, seats.c.status == "held")
        .values(status="free", hold_id=None, hold_expires_at=None)
    )
    return int(result.rowcount)


def release_sold(conn: Connection, *, booking_id: str, flight_id: str | None = None) -> int:
    """Put a cancelled booking's seats back on sale (only those on `flight_id`, if given)."""
    query = update(seats).where(seats.c.booking_id == booking_id, seats.c.status == "sold")
    if flight_id is not None:
        query = query.where(seats.c.flight_id == flight_id)
    result = conn.execute(query.values(status="free", hold_id=None, booking_id=None))
    return int(result.rowcount)


def expire_holds(conn: Connection, *, now: float) -> int:
    result = conn.execute(
        update(seats)
        .where(seats.c.status == "held", seats.c.hold_expires_at < now)
        .values(status="free", hold_id=None, hold_expires_at=None)
    )
    return int(result.rowcount)


def availability(conn: Connection, *, flight_id: str, now: float) -> dict[str, int]:
    """Seats a buyer could get right now, per cabin."""
    rows = conn.execute(
        select(seats.c.cabin, func.count())
        .where(
            seats.c.flight_id == flight_id,
            or_(
                seats.c.status == "free",
                and_(seats.c.status == "held", seats.c.hold_expires_at < now),
            ),
        )
        .group_by(seats.c.cabin)
    )
    return {cabin: int(count) for cabin, count in rows}
