"""Feeds legacy AODB changes (any change source) into the flight hub; resumes after restarts."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from jetbridge.aodb.cdc import RowChange, SqlChangeCapture
from jetbridge.aodb.sources import ChangeSource, WatermarkSource
from jetbridge.events.envelope import CloudEvent
from jetbridge.flights.hub import BUS, FlightHub, load_state, record_error, remove_flight
from jetbridge.flights.merge import Update
from jetbridge.flights.model import FIELDS, FlightIdentity, InvalidFlight
from jetbridge.loops import poll_until_stopped
from jetbridge.ops import metrics, tracing
from jetbridge.ops.health import Heartbeat
from jetbridge.storage.schema import capture_keys, cdc_positions

log = logging.getLogger(__name__)
CAPTURE_SOURCE = "jetbridge.capture"


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
    """Store `name`'s position in one statement (inserted the first time)."""
    values = {"position": position, "updated_at": time.time()}
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(cdc_positions).values(source=name, **values)
    conn.execute(statement.on_conflict_do_update(index_elements=["source"], set_=values))


class Positions(Protocol):
    """Where a runner keeps its source position (`save` may refuse: see aodb.lease).

    `trusted_for`: how many seconds a position the runner committed is certain to still be
    the stored one, so the next batch need not read it back (None: for as long as the runner
    runs, the row being nobody else's)."""

    trusted_for: float | None

    def load(self, conn: Connection) -> str | None: ...

    def save(self, conn: Connection, position: str | None) -> None: ...


class TablePositions:
    """An unshared position row (the demo's single in-process capture)."""

    trusted_for: float | None = None

    def __init__(self, name: str) -> None:
        self.name = name

    def load(self, conn: Connection) -> str | None:
        return load_position(conn, self.name)

    def save(self, conn: Connection, position: str | None) -> None:
        if position is not None:
            save_position(conn, self.name, position)


class CdcRunner:
    """Read a batch, apply it and store the position after it in one transaction, then
    acknowledge to the source (a crash before the acknowledgement re-reads: harmless)."""

    def __init__(
        self,
        source: ChangeSource | SqlChangeCapture,
        hub: FlightHub,
        *,
        interval: float = 0.2,
        name: str | None = None,
        positions: Positions | None = None,
    ) -> None:
        self.source = WatermarkSource(source) if isinstance(source, SqlChangeCapture) else source
        self.hub = hub
        self.interval = interval
        self.name = name or self.source.name
        self.positions = positions or TablePositions(self.name)
        self.known_keys: set[str] = set()
        # The position this runner last committed, with whose positions and until when it is
        # trusted: a batch then reads its source without a round trip for the position.
        self.committed: tuple[Positions, str | None, float] | None = None
        # Ready while it polls: a source that fails or hangs for a minute is reported.
        self.heartbeat = Heartbeat(f"change capture {self.name}", stale_after=max(60.0, interval))

    def step(self) -> int:
        """One batch: its changes and the position after it commit in one transaction."""
        positions = self.positions
        position = self._position(positions)
        try:
            changes, after = self.source.read(position)
            notices = self.source.notices()
            moved = after is not None and after != position
            if changes or moved or notices:
                # Its save renews a lease from now on: trusted from before the transaction.
                started = time.monotonic()
                self._commit(positions, changes, notices, after if moved else None)
                self._remember_position(positions, after if moved else position, started)
        except BaseException:
            self.committed = None  # read back at the next batch
            raise
        if after is not None and changes:
            self.source.acknowledge(after)
        self._observe(changes)
        return len(changes)

    def _position(self, positions: Positions) -> str | None:
        """The stored position: the one this runner committed last while it is trusted,
        otherwise read from its row (which checks a lease: LeaseLost)."""
        committed = self.committed
        if committed is not None and committed[0] is positions and time.monotonic() < committed[2]:
            return committed[1]
        with self.hub.backbone.reading() as conn:
            position = positions.load(conn)
        if positions.trusted_for is None:  # a lease is trusted after a commit renewed it
            self._remember_position(positions, position, time.monotonic())
        return position

    def _remember_position(self, positions: Positions, position: str | None, since: float) -> None:
        trusted = positions.trusted_for
        until = float("inf") if trusted is None else since + trusted
        self.committed = (positions, position, until)

    def _commit(
        self,
        positions: Positions,
        changes: list[RowChange],
        notices: list[str],
        after: str | None,
    ) -> None:
        """Apply a batch and store the position after it (None: unmoved) in one transaction."""
        # A captured batch starts a trace: every event it publishes carries it onwards.
        with (
            tracing.span(
                f"capture {self.name}",
                new_trace=True,
                attributes={"jetbridge.source": self.name, "jetbridge.changes": len(changes)},
            ),
            self.hub.backbone.transaction() as conn,
        ):
            self._report(conn, notices)
            # Consecutive updates are merged together (each flight read and written
            # once), and the batch's events go to the log in one append, in order.
            merging: list[Update] = []
            pending: list[CloudEvent] = []
            for change in changes:
                self._apply(conn, change, merging, pending)
            self._merge(conn, merging, pending)
            self._publish(conn, pending)
            # Last, so the lease row is locked only briefly: under a lease this is the
            # fence, and a capturer that lost its lease meanwhile rolls the batch back.
            positions.save(conn, after)

    def _publish(self, conn: Connection, pending: list[CloudEvent]) -> None:
        if pending:
            self.hub.backbone.publish(conn, bus=BUS, events=pending)
            pending.clear()

    def _merge(self, conn: Connection, merging: list[Update], pending: list[CloudEvent]) -> None:
        if merging:
            self.hub.apply_many(conn, merging, pending)
            merging.clear()

    def _apply(
        self,
        conn: Connection,
        change: RowChange,
        merging: list[Update],
        pending: list[CloudEvent],
    ) -> None:
        linked = change.deleted or change.via is not None
        if linked:
            self._merge(conn, merging, pending)  # it reads the stored state
        try:
            if linked:
                self._linked(conn, change, pending)
                return
            item = to_update(change)
        except InvalidFlight as exc:
            record_error(conn, source=self.name, location=f"row {change.key}", message=str(exc))
            return
        self._remember(conn, str(change.key), item.identity.key)
        merging.append(item)

    def _flight_key(self, conn: Connection, change: RowChange) -> str | None:
        """The flight a row stands for: its identity, the row of another source it names (an
        allocation naming its movement), or what was remembered of its key."""
        if change.via is not None:
            source, row_key = change.via
        elif change.identity:
            return FlightIdentity.create(**change.identity).key
        else:
            source, row_key = self.name, str(change.key)
        return conn.execute(
            select(capture_keys.c.flight_key).where(
                capture_keys.c.source == source, capture_keys.c.row_key == row_key[:256]
            )
        ).scalar()

    def _linked(self, conn: Connection, change: RowChange, pending: list[CloudEvent]) -> None:
        """A deleted row (cancel, remove, clear or ignore, as the mapping says) or a row that
        names its flight through another source's row."""
        if change.deleted and change.on_delete == "ignore":
            return
        flight_key = self._flight_key(conn, change)
        if flight_key is None:
            what = "deleted" if change.deleted else "changed"
            record_error(
                conn,
                source=self.name,
                location=f"row {change.key}",
                message=f"warning: a row was {what} whose flight was never captured; ignored",
            )
            return
        if change.deleted and change.on_delete == "remove":
            self._publish(conn, pending)  # the events before the removal come first
            remove_flight(self.hub.backbone, conn, flight_key)
            return
        state = load_state(conn, flight_key, for_update=True)
        if state is None:
            return
        sequence = change.row_version or 0
        if not change.deleted:
            self._remember(conn, str(change.key), flight_key)
            fields = {name: value for name, value in change.fields.items() if name in FIELDS}
            item = Update(
                state.identity, change.source, change.changed_at, fields, sequence=sequence
            )
        elif change.on_delete == "clear":
            if not change.clears:
                record_error(
                    conn,
                    source=self.name,
                    location=f"row {change.key}",
                    message="warning: a deleted allocation did not say its resource (its image "
                    "holds only the key: set REPLICA IDENTITY FULL on the table); ignored",
                )
                return
            clears = frozenset(change.clears)
            item = Update(state.identity, change.source, change.changed_at, clears=clears)
        else:
            cancel = {"status": "cancelled"}
            item = Update(
                state.identity, change.source, change.changed_at, cancel, sequence=sequence + 1
            )
        self.hub.apply(conn, item, pending=pending)

    def _remember(self, conn: Connection, row_key: str, flight_key: str) -> None:
        """Which flight a legacy row is, for its delete later (which may carry the key only)."""
        if row_key in self.known_keys:
            return
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(capture_keys)
            .values(source=self.name, row_key=row_key[:256], flight_key=flight_key)
            .on_conflict_do_nothing()
        )
        self.known_keys.add(row_key)

    def _report(self, conn: Connection, notices: list[str]) -> None:
        """A changed source table goes to the ingest log and the bus; capture goes on."""
        for notice in notices:
            log.warning("AODB source %s: %s", self.name, notice)
            record_error(
                conn, source=self.name[:64], location="schema", message=f"warning: {notice}"
            )
            event = CloudEvent(
                source=CAPTURE_SOURCE,
                type="capture.schema_changed",
                subject=self.name,
                data={"source": self.name, "message": notice},
            )
            self.hub.backbone.publish(conn, bus=BUS, events=[event])

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
