"""Feeds legacy AODB changes (any change source) into the flight hub; resumes after restarts."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from sqlalchemy import Connection, insert, select, update

from jetbridge.aodb.cdc import RowChange, SqlChangeCapture
from jetbridge.aodb.sources import ChangeSource, WatermarkSource
from jetbridge.flights.hub import FlightHub
from jetbridge.flights.merge import Update
from jetbridge.flights.model import FIELDS, FlightIdentity, InvalidFlight
from jetbridge.loops import poll_until_stopped
from jetbridge.ops import metrics, tracing
from jetbridge.ops.health import Heartbeat
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
        # Ready while it polls: a source that fails or hangs for a minute is reported.
        self.heartbeat = Heartbeat(f"change capture {self.name}", stale_after=max(60.0, interval))

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
        if updates:
            # A captured batch starts a trace: every event it publishes carries it onwards.
            with tracing.span(
                f"capture {self.name}",
                new_trace=True,
                attributes={"jetbridge.source": self.name, "jetbridge.changes": len(updates)},
            ):
                self._apply(updates, after if moved else None)
        elif moved:
            self._apply([], after)
        if after is not None and changes:
            self.source.acknowledge(after)
        self._observe(changes)
        return len(changes)

    def _apply(self, updates: list[Update], after: str | None) -> None:
        """The updates and the position after them (None: unchanged), in one transaction."""
        with self.hub.backbone.transaction() as conn:
            for item in updates:
                self.hub.apply(conn, item)
            if after is not None:
                save_position(conn, self.name, after)

    def _observe(self, changes: list[RowChange]) -> None:
        self.heartbeat.beat()
        metrics.CAPTURE_CHANGES.labels(self.name).inc(len(changes))
        newest = max((change.changed_at for change in changes), default=None)
        lag = 0.0
        if newest is not None:
            stamp = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
            lag = max(0.0, (datetime.now(UTC) - stamp).total_seconds())
        metrics.CAPTURE_LAG.labels(self.name).set(lag)

    async def run(self, stop: asyncio.Event) -> None:
        await poll_until_stopped(
            self.step, stop, interval=self.interval, name="AODB change capture"
        )
