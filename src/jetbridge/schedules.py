"""Publishing a schedule: each dated leg becomes the hub's flight and the catalogue's sellable
flight in one transaction, under one identity (`LX0100-2026-11-24-ZRH-LHR`).

The hub learns the scheduled times, aircraft, terminals and codeshare numbers from the schedule
(source `schedule`); the catalogue lays out the seats and fares. Importing the same schedule
again adds nothing and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jetbridge.booking.catalog import ScheduleEntry, import_schedule
from jetbridge.events.backbone import Backbone
from jetbridge.flights.hub import FlightHub
from jetbridge.flights.merge import Update

SOURCE = "schedule"


@dataclass
class Published:
    """What one import did: sellable flights added, hub flights created or changed."""

    sellable_added: int = 0
    hub_changed: list[str] = field(default_factory=list)
    flight_keys: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "legs": len(self.flight_keys),
            "sellable_added": self.sellable_added,
            "hub_changed": len(self.hub_changed),
            "flight_keys": self.flight_keys,
        }


def hub_update(entry: ScheduleEntry, *, received_at: datetime) -> Update:
    """What the schedule says about the leg, as a hub update."""
    fields: dict[str, Any] = {
        "times.off_block.scheduled": entry.departure,
        "times.on_block.scheduled": entry.arrival,
        "aircraft_type": entry.aircraft_type,
        "terminal": entry.terminal,
        "arrival_terminal": entry.arrival_terminal,
        "codeshares": ",".join(entry.codeshares) or None,
    }
    return Update(
        identity=entry.identity,
        source=SOURCE,
        source_time=received_at,
        fields={name: value for name, value in fields.items() if value is not None},
    )


def publish_schedule(
    backbone: Backbone,
    entries: Sequence[ScheduleEntry],
    *,
    received_at: datetime | None = None,
) -> Published:
    """Create (or bring up to date) the hub's flights and the sellable inventory of a schedule,
    all in one transaction: either every leg is published or none."""
    moment = received_at or datetime.now(UTC)
    hub = FlightHub(backbone)
    published = Published()
    with backbone.transaction() as conn:
        for entry in entries:
            applied = hub.apply(conn, hub_update(entry, received_at=moment))
            if applied is not None:
                published.hub_changed.append(applied.flight_key)
            published.flight_keys.append(entry.identity.key)
        published.sellable_added = import_schedule(conn, entries)
    return published
