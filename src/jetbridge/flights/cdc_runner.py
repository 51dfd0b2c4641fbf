"""Feeds legacy AODB changes (any change source) into the flight hub; resumes after restarts."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import Connection, insert, select, update

from jetbridge.aodb.cdc import RowChange, SqlChangeCapture
from jetbridge.aodb.sources import ChangeSource, WatermarkSource
from jetbridge.flights.hub import FlightHub
from jetbridge.flights.merge import Update
from jetbridge.flights.model import FIELDS, FlightIdentity, InvalidFlight
from jetbridge.loops import poll_until_stopped
from jetbridge.storage.schema import cdc_positions


def to_update(change: RowChange) -> Update:
    """A captured legacy row as a canonical update; its change time orders it."""
    identity = FlightIdentity.create(**change.identity)
    fields = {name: value for name, value in change.fields.items() if name in FIELDS}
    return Update(
        identity, change.source, change.changed_at, fields, sequence=change.row_version or 0
    )


def load_position(conn: Connection, name: str) -> str | None:
    return conn.execute(
        select(cdc_positions.c.position).where(cdc_positions.c.source == name)
    ).scalar()


def save_position(conn: Connection, name: str, position: str) -> None:
    values = {"position": position, "updated_at": time.time()}
    if load_position(conn, name) is None:
        conn.execute(insert(cdc_positions).values(source=name, **values))
    else:
        conn.execute(update(cdc_positions).where(cdc_positions.c.source == name).values(**values))


class CdcRunner:
    """Read a batch, apply it and store the position after it in one transaction, then
    acknowledge to the source (a crash before the acknowledgement re-reads: harmless)."""

    def __init__(
        self, source: ChangeSource | SqlChangeCapture, hub: FlightHub, *, interval: float = 0.2
    ) -> None:
        self.source = WatermarkSource(source) if isinstance(source, SqlChangeCapture) else source
        self.hub = hub
        self.interval = interval
        self.name = self.source.name

    def step(self) -> int:
        """One batch: its changes and the position after it commit in one transaction."""
        with self.hub.backbone.reading() as conn:
            position = load_position(conn, self.name)
        changes, after = self.source.read(position)
        updates = []
        for change in changes:
            try:
                updates.append(to_update(change))
            except InvalidFlight as exc:
                self.hub.record_error(
                    source=self.name, location=f"row {change.key}", message=str(exc)
                )
        moved = after is not None and after != position
        if updates or moved:
            with self.hub.backbone.transaction() as conn:
                for item in updates:
                    self.hub.apply(conn, item)
                if moved:
                    assert after is not None
                    save_position(conn, self.name, after)
        if after is not None and changes:
            self.source.acknowledge(after)
        return len(changes)

    async def run(self, stop: asyncio.Event) -> None:
        await poll_until_stopped(
            self.step, stop, interval=self.interval, name="AODB change capture"
        )
