"""Fenced leases on executions and the history writes made under them.

A worker claims an execution by setting its lease and incrementing its generation in one
statement; every later write of that worker (history events, lease renewals, parking, the final
status) matches the generation it claimed with, in the same transaction. A worker whose lease
lapsed and was claimed by another therefore writes nothing: its next commit finds a newer
generation and it aborts. A renewal thread keeps the lease while the worker runs.

History appends are idempotent per (execution, event id): a commit retried after its
connection was lost, whose first attempt did commit, adds nothing twice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Float,
    Integer,
    and_,
    bindparam,
    select,
    text,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import InterfaceError, OperationalError

from jetbridge.storage.schema import execution_events, executions
from jetbridge.storage.transient import is_transient

log = logging.getLogger(__name__)
T = TypeVar("T")
# Durable points: what happened outside the interpreter is committed before it goes on.
DURABLE_POINTS = frozenset(
    {"TaskSubmitted", "TaskSucceeded", "TaskFailed", "TaskTimedOut", "WaitStateEntered"}
)


class Aborted(Exception):
    """The execution was stopped (or taken over) while this worker ran it."""


@dataclass(frozen=True)
class Lease:
    """A worker's hold on an execution: writes count only while `generation` is current."""

    name: str
    generation: int


def held(lease: Lease) -> ColumnElement[bool]:
    """The execution row, if it still runs under this lease."""
    return held_by(lease.name, lease.generation)


def held_by(name: Any, generation: Any) -> ColumnElement[bool]:
    """`held` for a lease given by its values or by bound parameters (statements built once)."""
    return and_(
        executions.c.name == name,
        executions.c.status == "RUNNING",
        executions.c.generation == generation,
    )


def lapsed(now: float | ColumnElement[Any]) -> ColumnElement[bool]:
    """Nobody holds the execution at `now` (a time, or a bound parameter)."""
    return (executions.c.lease_until.is_(None)) | (executions.c.lease_until < now)


def take(conn: Connection, name: str, lease_seconds: float) -> Lease | None:
    """Claim `name` if it runs and nobody holds it: a new lease with the next generation."""
    now = time.time()
    taken = conn.execute(
        update(executions)
        .where(executions.c.name == name, executions.c.status == "RUNNING", lapsed(now))
        .values(
            lease_until=now + lease_seconds,
            parked=False,
            woken=False,
            generation=executions.c.generation + 1,
        )
    )
    if taken.rowcount == 0:
        return None
    generation = conn.execute(
        select(executions.c.generation).where(executions.c.name == name)
    ).scalar_one()
    return Lease(name, int(generation))


def take_due(conn: Connection, count: int, lease_seconds: float) -> list[Lease]:
    """Claim up to `count` running executions nobody holds, oldest first, in one statement
    (on PostgreSQL skipping rows another transaction is claiming)."""
    now = time.time()
    statement = _TAKE_DUE["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
    taken = conn.execute(statement, {"now": now, "until": now + lease_seconds, "count": count})
    return [Lease(name, int(generation)) for name, generation in taken]


def _take_due(postgres: bool) -> Any:
    """The claim of `take_due`, built once with its values bound (building it per claim cost
    more than running it)."""
    due_now = lapsed(bindparam("now", type_=Float))
    due = (
        select(executions.c.name)
        .where(executions.c.status == "RUNNING", due_now)
        .order_by(executions.c.started_at)
        .limit(bindparam("count", type_=Integer))
    )
    if postgres:
        due = due.with_for_update(skip_locked=True)
    return (
        update(executions)
        .where(executions.c.name.in_(due.scalar_subquery()), due_now)
        .values(
            lease_until=bindparam("until", type_=Float),
            parked=False,
            woken=False,
            generation=executions.c.generation + 1,
        )
        .returning(executions.c.name, executions.c.generation)
    )


_TAKE_DUE = {"postgresql": _take_due(True), "sqlite": _take_due(False)}


def append_events(conn: Connection, name: str, events: Iterable[dict[str, Any]]) -> None:
    """Store history events; an event already stored under its id is left as it is."""
    append_history(conn, [(name, event) for event in events])


def append_history(conn: Connection, events: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """Store (execution, event) pairs of any executions, as `append_events` does."""
    pairs = list(events)
    if not pairs:
        return
    if conn.dialect.name == "postgresql":
        # One statement over one JSON document, whatever the number of events: one round trip,
        # one encoding, no per-row work in the driver. Each body is the text of its event in
        # that document, the same text `json.dumps(event)` makes.
        conn.execute(_APPEND_JSON, {"rows": json.dumps(pairs)})
        return
    rows = [{"execution": name, "event_id": e["id"], "body": json.dumps(e)} for name, e in pairs]
    conn.execute(_APPEND_ROWS, rows)


_APPEND_ROWS = sqlite.insert(execution_events).on_conflict_do_nothing()  # built once
_APPEND_JSON = text(
    "INSERT INTO workflow_events (execution, event_id, body) "
    "SELECT pair->>0, CAST(pair->1->>'id' AS integer), CAST(pair->1 AS text) "
    "FROM json_array_elements(CAST(:rows AS json)) AS pair ON CONFLICT DO NOTHING"
)


def retrying(engine: Engine, work: Callable[[Connection], T], *, within: float) -> T:
    """Run `work` in a transaction, again after a transient database error (a lost connection,
    a locked SQLite database, a serialization failure), for up to `within` s (`work` must be
    safe to repeat after a commit whose answer was lost)."""
    give_up = time.monotonic() + within
    delay = 0.1
    while True:
        try:
            with engine.begin() as conn:
                return work(conn)
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() + delay > give_up:
                raise
            log.warning("transient database error (%s); retrying in %.1f s", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


class HistoryWriter:
    """Buffers one run's new events and commits them at each durable point, in order, while
    the lease is still this worker's."""

    def __init__(
        self,
        engine: Engine,
        lease: Lease,
        lease_seconds: float,
        *,
        group: Callable[[Lease, list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.lease = lease
        self.lease_seconds = lease_seconds
        self.group = group  # commits with other executions' durable points (`group_commit`)
        self.pending: list[dict[str, Any]] = []

    def record(self, event: dict[str, Any]) -> None:
        self.pending.append(event)
        if event["type"] in DURABLE_POINTS:
            self.commit()

    def commit(self) -> None:
        """Flush, retried if the connection is lost: in a transaction of its own, or in the
        group's next one."""
        if self.group is None:
            retrying(self.engine, self.flush, within=self.lease_seconds)
            return
        self.group(self.lease, self.pending)
        self.pending = []

    def flush(self, conn: Connection) -> None:
        """Renew the lease and store what is pending; Aborted if the lease is not ours."""
        renewed = conn.execute(
            update(executions)
            .where(held(self.lease))
            .values(lease_until=time.time() + self.lease_seconds)
        )
        if renewed.rowcount == 0:
            raise Aborted(self.lease.name)
        append_events(conn, self.lease.name, self.pending)
        self.pending = []


class LeaseKeeper:
    """Renews, every third of their length, the leases its worker holds while it runs them (not
    while parked): one thread per engine, started with the first lease."""

    def __init__(self, engine: Engine, lease_seconds: float) -> None:
        self.engine = engine
        self.lease_seconds = lease_seconds
        self.held: dict[object, Lease] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    @contextmanager
    def keeping(self, lease: Lease) -> Iterator[None]:
        key = object()
        with self.lock:
            self.held[key] = lease
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name="leases", daemon=True)
                self.thread.start()
        try:
            yield
        finally:
            with self.lock:
                del self.held[key]

    def _loop(self) -> None:
        while True:
            time.sleep(self.lease_seconds / 3)
            with self.lock:
                leases = list(self.held.values())
            for lease in leases:
                try:
                    self.renew(lease)
                except (OperationalError, InterfaceError):
                    log.warning("could not renew the lease of %s", lease.name, exc_info=True)

    def renew(self, lease: Lease) -> None:
        """Extend a lease still held and running (a woken or parked execution is left alone:
        its lease_until says when it is due)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(executions)
                .where(
                    held(lease),
                    executions.c.parked.is_(False),
                    executions.c.lease_until.isnot(None),
                )
                .values(lease_until=time.time() + self.lease_seconds)
            )
