"""The loyalty ledger around a booking's life: what a booking holds (its award and the
adjustments of its changes), the adjustment a passenger's own change of flight makes, and the
balance kept beside the ledger. The rules are in `loyalty.py` and docs/booking.md."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from jetbridge.booking.loyalty import points_for, tier_for
from jetbridge.errors import Conflict
from jetbridge.storage.schema import loyalty_accounts, loyalty_ledger

# Ledger kinds are at most 8 characters: `change1` to `change99`.
MAX_CHANGES = 99


def balance_of(conn: Connection, customer: str) -> int | None:
    """The customer's balance, None without an account."""
    found = conn.execute(
        select(loyalty_accounts.c.points).where(loyalty_accounts.c.customer_id == customer)
    ).scalar()
    return None if found is None else int(found)


def set_balance(conn: Connection, customer: str, points: int, *, exists: bool) -> None:
    values = {"points": points, "tier": tier_for(points).value, "updated_at": time.time()}
    if exists:
        conn.execute(
            update(loyalty_accounts)
            .where(loyalty_accounts.c.customer_id == customer)
            .values(**values)
        )
    else:
        conn.execute(insert(loyalty_accounts).values(customer_id=customer, **values))


def held_by(conn: Connection, booking_id: str) -> int:
    """The points a booking holds now: its award and its changes' adjustments."""
    total = conn.execute(
        select(func.coalesce(func.sum(loyalty_ledger.c.points), 0)).where(
            loyalty_ledger.c.booking_id == booking_id, loyalty_ledger.c.kind != "revoke"
        )
    ).scalar()
    return int(total or 0)


def adjust_for_change(
    conn: Connection, *, booking: dict[str, Any], difference: int, cabin: str
) -> int:
    """After a passenger's own change of flight: a higher fare earns the points of the amount
    paid on top, a lower fare gives back the points of the amount refunded (the balance never
    goes below zero), an equal fare keeps the points. Recorded as `change<n>`; the points."""
    booking_id, customer = booking["booking_id"], booking["customer_id"]
    balance = balance_of(conn, customer)
    awarded = conn.execute(
        select(func.count()).where(
            loyalty_ledger.c.booking_id == booking_id, loyalty_ledger.c.kind == "award"
        )
    ).scalar()
    if not awarded or difference == 0:
        return 0  # nothing was earned by this booking, or nothing changes
    changes = conn.execute(
        select(func.count()).where(
            loyalty_ledger.c.booking_id == booking_id, loyalty_ledger.c.kind.like("change%")
        )
    ).scalar()
    if int(changes or 0) >= MAX_CHANGES:
        raise Conflict(f"booking {booking_id} was changed {MAX_CHANGES} times; call the airline")
    current = balance or 0
    points = points_for(fare_minor=abs(difference), cabin=cabin, tier=tier_for(current))
    if difference < 0:
        points = -min(points, current, held_by(conn, booking_id))
    if points == 0:
        return 0
    conn.execute(
        insert(loyalty_ledger).values(
            booking_id=booking_id,
            kind=f"change{int(changes or 0) + 1}",
            customer_id=customer,
            points=points,
            at=time.time(),
        )
    )
    set_balance(conn, customer, current + points, exists=balance is not None)
    return points
