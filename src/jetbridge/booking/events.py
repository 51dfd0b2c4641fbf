"""Booking events as CloudEvents, partitioned by booking so each booking's story stays in order."""

from __future__ import annotations

from typing import Any

from jetbridge.events.envelope import CloudEvent

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
