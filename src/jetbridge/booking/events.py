"""Booking events as CloudEvents, partitioned by booking so each booking's story stays in order."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from jetbridge.events.envelope import CloudEvent
from jetbridge.storage.schema import bookings, tenants

SOURCE = "jetbridge.booking"


def booking_event(
    kind: str, *, booking_id: str, data: dict[str, Any], key: str | None = None
) -> CloudEvent:
    """`kind` is past tense (booking.confirmed); the id makes a repeated step publish once."""
    return CloudEvent(
        id=f"{booking_id}:{kind}:{key or ''}",
        source=SOURCE,
        type=kind,
        subject=booking_id,
        partitionkey=booking_id,
        data={"booking_id": booking_id, **data},
    )


def booking_bus(
    conn: Connection, *, tenant: str | None = None, booking_id: str | None = None
) -> str:
    """Where a booking's events go: its airline's own bus when the airline is a tenant (one bus
    per airline), else the platform's default bus."""
    if tenant is None and booking_id is not None:
        tenant = conn.execute(
            select(bookings.c.tenant).where(bookings.c.booking_id == booking_id)
        ).scalar()
    if tenant is None:
        return "default"
    bus = conn.execute(select(tenants.c.bus).where(tenants.c.tenant_id == tenant)).scalar()
    return str(bus) if bus else "default"
