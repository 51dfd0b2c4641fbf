"""Seat inventory: holds that expire, confirmation and release, safe under concurrent buyers.

On PostgreSQL concurrent holds lock distinct rows (`FOR UPDATE SKIP LOCKED`); on SQLite the
write transaction is exclusive. A seat is sold at most once: it moves free/expired → held → sold
only through these functions, each guarded by its current status and hold id.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select, update
from sqlalchemy.exc import DBAPIError

from jetbridge.storage.schema import seats

# Deadlock detected, lock not available (the server's lock_timeout).
_LOCK_CONFLICTS = {"40P01", "55P03"}


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
    """Hold `count` seats for `ttl` seconds, front rows first; all or nothing. One statement:
    the seats are chosen, counted and held together (on PostgreSQL the chosen rows are locked
    and rows another transaction holds are skipped), so nothing is written when too few are
    left.

    On PostgreSQL a short first look may have skipped seats other buyers' open transactions
    are taking; the buyer is refused only after those transactions end: the seats left are
    locked, waiting for them, and held if there are enough (another buyer's transaction that
    rolled back frees its seats for this one). The count in the refusal is of seats nobody
    has."""
    postgres = conn.dialect.name == "postgresql"
    available = select(seats.c.seat).where(_available(flight_id, cabin, now)).order_by(seats.c.seat)
    values = {"status": "held", "hold_id": hold_id, "hold_expires_at": now + ttl}
    chosen = available.limit(count)
    if postgres:
        chosen = chosen.with_for_update(skip_locked=True)
    # On PostgreSQL, for more than one seat the first look runs in a savepoint, so that the
    # seats it locked without holding them are let go before waiting on others (two buyers
    # waiting on each other's seats would deadlock); a short look for one seat locked none.
    first = conn.begin_nested() if postgres and count > 1 else None
    picked = chosen.cte("picked")
    enough = select(func.count()).select_from(picked).scalar_subquery() == count
    found = _hold(conn, flight_id, select(picked.c.seat), values, enough)
    if len(found) == count:
        if first is not None:
            first.commit()
        return found
    if first is not None:
        first.rollback()
    if not postgres:  # its write transaction is exclusive: no seat is being taken meanwhile
        left = conn.execute(
            select(func.count()).where(_available(flight_id, cabin, now))
        ).scalar_one()
        raise _sold_out(flight_id, cabin, left, count)
    # Locked in seat order, all of them, so that concurrent waiters never wait on each other
    # in a cycle; rows taken meanwhile no longer match once their takers commit. A transaction
    # that already holds other seats (legs of one journey) can still meet another in a cycle:
    # the server breaks it, and this buyer counts the seats nobody is taking, as without waiting.
    waiting = conn.begin_nested()
    try:
        free = list(conn.execute(available.with_for_update()).scalars())
    except DBAPIError as exc:
        waiting.rollback()
        if getattr(exc.orig, "sqlstate", None) not in _LOCK_CONFLICTS:
            raise
        free = list(conn.execute(available.with_for_update(skip_locked=True)).scalars())
        raise _sold_out(flight_id, cabin, len(free), count) from None
    waiting.commit()
    if len(free) < count:
        raise _sold_out(flight_id, cabin, len(free), count)
    return _hold(conn, flight_id, free[:count], values, None)


def _sold_out(flight_id: str, cabin: str, left: int, count: int) -> SoldOut:
    return SoldOut(f"only {left} {cabin} seat(s) left on {flight_id}, {count} requested")


def _hold(
    conn: Connection,
    flight_id: str,
    chosen: Any,
    values: dict[str, Any],
    enough: ColumnElement[bool] | None,
) -> list[str]:
    query = update(seats).where(seats.c.flight_id == flight_id, seats.c.seat.in_(chosen))
    if enough is not None:
        query = query.where(enough)
    held = conn.execute(query.values(**values, booking_id=None).returning(seats.c.seat)).scalars()
    return sorted(held)


def free_seats(
    conn: Connection, *, flight_id: str, cabin: str, count: int, now: float
) -> list[str]:
    """Up to `count` seats free in the cabin, front rows first, for the caller to hold in the
    same transaction (on PostgreSQL they stay locked until it ends; seats another transaction
    holds locked are skipped)."""
    query = (
        select(seats.c.seat)
        .where(_available(flight_id, cabin, now))
        .order_by(seats.c.seat)
        .limit(count)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(conn.execute(query).scalars())


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
