"""The event log and the delivery queue: the small interface every backend implements.

`SqlEventLog` keeps both in the platform database (SQLite or PostgreSQL). Appends take the
caller's connection, so a state change and the events describing it commit together (outbox).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.elements import BindParameter

from jetbridge.bounds import checked_id
from jetbridge.events.wakeups import CHANNEL, MAX_PAYLOAD
from jetbridge.storage.schema import dead_letters, deliveries, events, jetstream_outbox


@dataclass(frozen=True, slots=True)
class LogEntry:
    """An event to append: identity columns plus its CloudEvents JSON body."""

    bus: str
    event_id: str
    source: str
    type: str
    tenant: str
    partition_key: str | None
    event_time: float
    body: str
    replay_name: str = ""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    bus: str
    event_id: str
    ingested_at: float
    body: str


@dataclass(frozen=True, slots=True)
class NewDelivery:
    event_seq: int
    bus: str
    rule: str
    target_id: str
    partition_key: str | None

    @property
    def lane(self) -> str | None:
        """Deliveries sharing a lane reach their target in publish order."""
        if self.partition_key is None:
            return None
        return "\x1f".join((self.bus, self.rule, self.target_id, self.partition_key))


# A rule's target: (bus, rule, target id).
TargetKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_seq: int
    bus: str
    rule: str
    target_id: str
    attempts: int
    created_at: float
    body: str


class EventLog(Protocol):
    def append(
        self, conn: Connection, entries: Sequence[LogEntry], *, now: float
    ) -> list[int | None]:
        """Store events; returns each one's sequence number, None for a duplicate."""
        ...

    def read(self, conn: Connection, *, bus: str, after: int, limit: int) -> list[StoredEvent]: ...

    def latest_seq(self, conn: Connection, *, bus: str) -> int: ...


class Reserving(Protocol):
    """Who takes deliveries over as they are enqueued (`delivery.Handover`)."""

    @property
    def lease_seconds(self) -> float: ...

    def reserve(self, target: TargetKey) -> bool:
        """Whether a slot is held for one more delivery to `target`."""
        ...


class DeliveryQueue(Protocol):
    def enqueue(
        self,
        conn: Connection,
        items: Sequence[NewDelivery],
        *,
        now: float,
        handover: Reserving | None = None,
    ) -> list[tuple[int, NewDelivery]]:
        """Queue `items`. With a `handover`, where the queue can tell a lane's order at once,
        an item that is its lane's first and for which `handover` reserves a slot is queued
        already leased for `handover.lease_seconds`; those come back with their ids."""
        ...

    def claim(
        self,
        *,
        limit: int,
        lease_seconds: float,
        now: float,
        skip: Collection[TargetKey] = (),
        expected: bool = False,
        reading: Callable[[Connection, list[Delivery]], None] | None = None,
    ) -> list[Delivery]:
        """Lease due deliveries; within a lane only the oldest pending one is ever handed out.
        Deliveries to the targets in `skip` (bus, rule, target id) are left for later.
        `expected`: work is probably due (a commit has just signalled it), so the claim need not
        first look without locking. `reading` is called in the claim's transaction with what
        it claimed (to read what their delivery needs without another connection)."""
        ...

    def complete(self, conn: Connection, delivery: Delivery) -> None: ...

    def retry(self, delivery: Delivery, *, error: str, at: float) -> None: ...

    def dead_letter(self, delivery: Delivery, *, error: str, now: float) -> None: ...

    def release(self, delivery: Delivery) -> None: ...

    def pending(self) -> int: ...


# Rows per INSERT when appending: well within SQLite's and PostgreSQL's limits on parameters.
APPEND_ROWS = 200


def _identity(entry: LogEntry) -> tuple[Any, ...]:
    """What makes an event stored once (the `uq_events_identity` constraint)."""
    return (entry.bus, entry.source, entry.event_id, entry.replay_name)


# A PostgreSQL batch append: the entries bound as one JSON array of rows (one text value
# the driver sends as it is; arrays of text were escaped element by element in Python) and a
# statement whose text never changes. ORDER BY keeps the sequence numbers in the entries' order.
_COLUMNS = {
    "bus": "text",
    "event_id": "text",
    "source": "text",
    "type": "text",
    "tenant": "text",
    "partition_key": "text",
    "event_time": "float8",
    "replay_name": "text",
    "body": "text",
}
_APPEND_JSON = (
    f"INSERT INTO events ({', '.join(_COLUMNS)}, ingested_at) SELECT "
    + ", ".join(
        f"CAST(given.entry->>{index} AS {kind})" for index, kind in enumerate(_COLUMNS.values())
    )
    + ", :now FROM json_array_elements(CAST(:entries AS json)) WITH ORDINALITY "
    "AS given(entry, position) ORDER BY given.position "
    "ON CONFLICT DO NOTHING RETURNING seq, bus, source, event_id, replay_name"
)
# The same append in one round trip with what follows it: the new events' outbox rows (in
# sequence order, distributed mode) and the commit notification of each bus that got one.
# `announced` is a plain CTE, run only because the result reads it (once: not correlated).
_STORED_JSON = (
    f"WITH stored AS ({_APPEND_JSON}), "
    f"announced AS (SELECT count(pg_notify('{CHANNEL}', bus)) AS sent FROM "
    f"(SELECT DISTINCT left(bus, {MAX_PAYLOAD}) AS bus FROM stored ORDER BY 1) AS buses)"
)
_READ_STORED = (
    " SELECT seq, bus, source, event_id, replay_name, (SELECT sent FROM announced) FROM stored"
)
_APPEND_ANNOUNCED = text(_STORED_JSON + _READ_STORED)
_APPEND_QUEUED_ANNOUNCED = text(
    _STORED_JSON + ", queued AS (INSERT INTO jetstream_outbox (event_seq) "
    "SELECT seq FROM stored ORDER BY seq)" + _READ_STORED
)
# A batch's outbox targets: one statement, the (event seq, targets) pairs as one JSON array.
_OUTBOX_TARGETS = text(
    "UPDATE jetstream_outbox SET targets = given.pair->>1 "
    "FROM json_array_elements(CAST(:pairs AS json)) AS given(pair) "
    "WHERE jetstream_outbox.event_seq = CAST(given.pair->>0 AS bigint) "
    "RETURNING jetstream_outbox.event_seq"
)


def _sequence_numbers(entries: Sequence[LogEntry], returned: Iterable[Any]) -> list[int | None]:
    """Each entry's sequence number from the rows an append returned (seq, bus, source,
    event_id, replay_name first), None where it was stored before: a row comes back once, so
    a second entry of the same event gets None too."""
    stored: dict[tuple[Any, ...], int] = {}
    for seq, *key in returned:
        stored[tuple(key[:4])] = seq
    return [stored.pop(_identity(entry), None) for entry in entries]


def _queued(item: NewDelivery, now: float) -> dict[str, Any]:
    return {
        "event_seq": item.event_seq,
        "bus": item.bus,
        "rule": item.rule,
        "target_id": item.target_id,
        "lane": item.lane,
        "attempts": 0,
        "next_attempt_at": now,
        "lease_until": None,
        "created_at": now,
    }


def _row(entry: LogEntry, now: float) -> dict[str, Any]:
    return {
        "bus": entry.bus,
        "event_id": entry.event_id,
        "source": entry.source,
        "type": entry.type,
        "tenant": entry.tenant,
        "partition_key": entry.partition_key,
        "event_time": entry.event_time,
        "ingested_at": now,
        "replay_name": entry.replay_name,
        "body": entry.body,
    }


class SqlEventLog:
    """Event log and delivery queue in SQL tables; leases make delivery survive a crash."""

    def __init__(self, engine: Engine, *, outbox: bool = False) -> None:
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        # Distributed mode: each new event also waits in the outbox for the JetStream relay.
        self.outbox = outbox
        # SQLite's appends (PostgreSQL's are `_APPEND_*`): one statement with bound values,
        # built (and its cache key computed) once, not per row.
        self._insert = sqlite.insert(events).on_conflict_do_nothing().returning(events.c.seq)
        # Several entries: the same statement run over all their rows, which SQLAlchemy sends
        # as multi-row INSERTs of up to `APPEND_ROWS` rows (compiled once, not per batch size).
        self._insert_rows = (
            sqlite.insert(events)
            .on_conflict_do_nothing()
            .returning(
                events.c.seq, events.c.bus, events.c.source, events.c.event_id, events.c.replay_name
            )
            .execution_options(insertmanyvalues_page_size=APPEND_ROWS)
        )
        # The delivery worker's statements, likewise built once: deliveries due at :now whose
        # lane has no earlier one pending, at most :limit; leasing them; reading them back.
        head = deliveries.alias("head")
        earlier = select(head.c.id).where(
            head.c.lane == deliveries.c.lane, head.c.id < deliveries.c.id
        )
        now: BindParameter[float] = bindparam("now")
        self._due = (
            select(deliveries.c.id)
            .where(
                deliveries.c.next_attempt_at <= now,
                or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now),
                or_(deliveries.c.lane.is_(None), ~earlier.exists()),
            )
            .order_by(deliveries.c.id)
            .limit(bindparam("limit"))
        )
        claimed = deliveries.c.id.in_(bindparam("ids", expanding=True))
        self._lease = update(deliveries).where(claimed).values(lease_until=bindparam("until"))
        self._leased = (
            select(
                deliveries.c.id,
                deliveries.c.event_seq,
                deliveries.c.bus,
                deliveries.c.rule,
                deliveries.c.target_id,
                deliveries.c.attempts,
                events.c.ingested_at,
                events.c.body,
            )
            .join(events, events.c.seq == deliveries.c.event_seq)
            .where(claimed)
            .order_by(deliveries.c.id)
        )
        self._completed = delete(deliveries).where(deliveries.c.id == bindparam("id"))
        self._enqueue = insert(deliveries)
        self._enqueue_ids = (
            insert(deliveries)
            .returning(deliveries.c.id, sort_by_parameter_order=True)
            .execution_options(insertmanyvalues_page_size=APPEND_ROWS)
        )
        self._enqueue_id = insert(deliveries).returning(deliveries.c.id)
        self._lane_busy = (
            select(deliveries.c.id).where(deliveries.c.lane == bindparam("lane")).limit(1)
        )
        # The lanes among :lanes (a JSON array) that have a delivery pending (SQLite).
        self._busy_lanes = text(
            "SELECT DISTINCT lane FROM deliveries "
            "WHERE lane IN (SELECT value FROM json_each(:lanes))"
        )

    def append(
        self, conn: Connection, entries: Sequence[LogEntry], *, now: float
    ) -> list[int | None]:
        """Store the entries in their order (on SQLite one entry with the statement built
        once, more with up to `APPEND_ROWS` rows a statement); each one's sequence number, or
        None where the same event was stored before (or earlier in `entries`)."""
        if self._postgres:
            # One statement whose text never changes (a multi-row VALUES differs per batch
            # size and is re-parsed by the driver each time: it held a busy capture back),
            # with the outbox rows and commit notifications of the same events.
            statement = _APPEND_QUEUED_ANNOUNCED if self.outbox else _APPEND_ANNOUNCED
            rows = json.dumps([[getattr(entry, name) for name in _COLUMNS] for entry in entries])
            returned = conn.execute(statement, {"entries": rows, "now": now})
            return _sequence_numbers(entries, returned)
        if len(entries) == 1:
            seqs: list[int | None] = [
                conn.execute(self._insert, _row(entries[0], now)).scalar_one_or_none()
            ]
        else:
            returned = conn.execute(self._insert_rows, [_row(entry, now) for entry in entries])
            seqs = _sequence_numbers(entries, returned)
        if self.outbox and (new := [{"event_seq": seq} for seq in seqs if seq is not None]):
            conn.execute(insert(jetstream_outbox), new)
        return seqs

    def read(self, conn: Connection, *, bus: str, after: int, limit: int) -> list[StoredEvent]:
        checked_id(after, "after")
        rows = conn.execute(
            select(
                events.c.seq, events.c.bus, events.c.event_id, events.c.ingested_at, events.c.body
            )
            .where(events.c.bus == bus, events.c.seq > after)
            .order_by(events.c.seq)
            .limit(limit)
        )
        return [StoredEvent(*row) for row in rows]

    def latest_seq(self, conn: Connection, *, bus: str) -> int:
        latest = conn.execute(select(func.max(events.c.seq)).where(events.c.bus == bus)).scalar()
        return int(latest or 0)

    @property
    def hands_over(self) -> bool:
        """Whether `enqueue` may lease deliveries to a `handover`: on SQLite, whose write
        transactions take turns, so no other transaction can be queuing into the same lane
        unseen; on PostgreSQL (and through the outbox) the worker claims them."""
        return not self._postgres and not self.outbox

    def enqueue(
        self,
        conn: Connection,
        items: Sequence[NewDelivery],
        *,
        now: float,
        handover: Reserving | None = None,
    ) -> list[tuple[int, NewDelivery]]:
        if not items:
            return []
        if self.outbox:
            items = self._enqueue_on_outbox(conn, items)
        if not items:
            return []
        if handover is not None and self.hands_over:
            return self._enqueue_leased(conn, items, now, handover)
        conn.execute(self._enqueue, [_queued(item, now) for item in items])
        return []

    def _enqueue_leased(
        self, conn: Connection, items: Sequence[NewDelivery], now: float, handover: Reserving
    ) -> list[tuple[int, NewDelivery]]:
        """Items that are first in their lane (none pending before them, here or earlier in
        `items`) and get a slot from `handover` are queued leased; their ids come back."""
        lanes = sorted({item.lane for item in items if item.lane is not None})
        busy: set[str] = set()
        if len(lanes) == 1:  # the common case, with a statement cheaper to run
            if conn.execute(self._lane_busy, {"lane": lanes[0]}).first() is not None:
                busy.add(lanes[0])
        elif lanes:
            busy.update(conn.execute(self._busy_lanes, {"lanes": json.dumps(lanes)}).scalars())
        rows: list[dict[str, Any]] = []
        leased: list[int] = []
        until = now + handover.lease_seconds
        for item in items:
            row = _queued(item, now)
            first = item.lane is None or item.lane not in busy
            if item.lane is not None:
                busy.add(item.lane)
            if first and handover.reserve((item.bus, item.rule, item.target_id)):
                row["lease_until"] = until
                leased.append(len(rows))
            rows.append(row)
        if not leased:
            conn.execute(self._enqueue, rows)
            return []
        if len(rows) == 1:
            return [(conn.execute(self._enqueue_id, rows[0]).scalar_one(), items[0])]
        ids = list(conn.execute(self._enqueue_ids, rows).scalars())
        return [(ids[index], items[index]) for index in leased]

    @staticmethod
    def _enqueue_on_outbox(conn: Connection, items: Sequence[NewDelivery]) -> list[NewDelivery]:
        """Distributed mode: an event's deliveries travel with it through the outbox into
        JetStream. Returns those of events no longer in the outbox (a dead letter from before
        NATS was configured, redriven): they stay in the database's queue."""
        by_event: dict[int, list[NewDelivery]] = {}
        for item in items:
            by_event.setdefault(item.event_seq, []).append(item)
        targets = {
            seq: json.dumps([[item.rule, item.target_id] for item in group])
            for seq, group in by_event.items()
        }
        if conn.dialect.name == "postgresql":
            # One statement for the whole batch, its text the same every time: a round trip
            # (and a scan of the outbox) per event, then a statement compiled per batch, is
            # what held a busy capture back.
            pairs = json.dumps(list(targets.items()))
            found = set(conn.execute(_OUTBOX_TARGETS, {"pairs": pairs}).scalars())
        else:
            found = {
                seq
                for seq, listed in targets.items()
                if conn.execute(
                    update(jetstream_outbox)
                    .where(jetstream_outbox.c.event_seq == seq)
                    .values(targets=listed)
                ).rowcount
            }
        return [item for seq, group in by_event.items() if seq not in found for item in group]

    def claim(
        self,
        *,
        limit: int,
        lease_seconds: float,
        now: float,
        skip: Collection[TargetKey] = (),
        expected: bool = False,
        reading: Callable[[Connection, list[Delivery]], None] | None = None,
    ) -> list[Delivery]:
        query = self._due
        if skip:
            target = tuple_(deliveries.c.bus, deliveries.c.rule, deliveries.c.target_id)
            query = query.where(~target.in_(list(skip)))
        if self._postgres:
            query = query.with_for_update(skip_locked=True, of=deliveries)
        elif not expected:
            # Idle polls on SQLite are reads: the write lock is taken only when work is due.
            with self.engine.connect() as conn:
                conn.execution_options(readonly=True)
                if conn.execute(query, {"now": now, "limit": 1}).first() is None:
                    return []
        with self.engine.begin() as conn:
            ids = list(conn.execute(query, {"now": now, "limit": limit}).scalars())
            if not ids:
                return []
            conn.execute(self._lease, {"ids": ids, "until": now + lease_seconds})
            claimed = [Delivery(*row) for row in conn.execute(self._leased, {"ids": ids})]
            if reading is not None:
                reading(conn, claimed)
            return claimed

    def complete(self, conn: Connection, delivery: Delivery) -> None:
        conn.execute(self._completed, {"id": delivery.id})

    def retry(self, delivery: Delivery, *, error: str, at: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery.id)
                .values(
                    attempts=delivery.attempts + 1,
                    next_attempt_at=at,
                    lease_until=None,
                    last_error=error[:2000],
                )
            )

    def release(self, delivery: Delivery) -> None:
        """Hand a claimed delivery back unattempted: due again at once for any worker."""
        with self.engine.begin() as conn:
            conn.execute(
                update(deliveries).where(deliveries.c.id == delivery.id).values(lease_until=None)
            )

    def dead_letter(self, delivery: Delivery, *, error: str, now: float) -> None:
        with self.engine.begin() as conn:
            removed = conn.execute(delete(deliveries).where(deliveries.c.id == delivery.id))
            if removed.rowcount == 0:
                return
            conn.execute(
                insert(dead_letters).values(
                    event_seq=delivery.event_seq,
                    bus=delivery.bus,
                    rule=delivery.rule,
                    target_id=delivery.target_id,
                    body=delivery.body,
                    error=error[:4000],
                    attempts=delivery.attempts + 1,
                    failed_at=now,
                )
            )

    def drop(self, delivery: Delivery) -> None:
        with self.engine.begin() as conn:
            self.complete(conn, delivery)

    def pending(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(deliveries)).scalar_one())

    def pending_for(self, conn: Connection, *, bus: str, rule: str) -> int:
        query = select(func.count()).where(and_(deliveries.c.bus == bus, deliveries.c.rule == rule))
        return int(conn.execute(query).scalar_one())
