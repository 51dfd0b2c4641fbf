"""Group commit: the durable points, ends and claims of executions that one worker runs at the
same time share one transaction.

A run that reaches a durable point queues its lease and its pending events (an end also queues
the writes that end it; a worker slot looking for work queues a claim). If a lane is idle, that
run leads it: it takes everything queued there, checks all those leases with one query (locking
the rows FOR SHARE on PostgreSQL, so a take-over waits for this commit), stores the events of
those still held with one insert, writes their ends, claims due executions for the claims,
commits, and gives each member its own outcome; runs that queue meanwhile join the lane that
gathers the most, and the first of them leads its next batch. Each run still waits for its own
events to be committed before it goes on, so what a crash can lose, and the order and content
of every history, are as when each run commits alone; only the number of commits falls.

A member whose lease was taken over is told Aborted and nothing of it is written. A transient
error retries the whole batch (every write in it is idempotent); any other error redoes the
batch one member at a time, so one bad member fails only itself.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, text, tuple_

from jetbridge.storage.schema import executions
from jetbridge.storage.transient import is_transient
from jetbridge.workflows.leases import Aborted, Lease, append_history, retrying, take_due

MAX_BATCH = 256  # members per transaction; more wait for the next one
LANES = 2
Then = Callable[[Connection], None]


@dataclass(eq=False)
class _Member:
    lease: Lease | None  # None: a claim
    events: list[dict[str, Any]] = field(default_factory=list)
    then: Then | None = None  # more writes under the lease, in the same transaction
    claimed: Lease | None = None
    woken: threading.Event = field(default_factory=threading.Event)
    settled: bool = False
    error: Exception | None = None


@dataclass(eq=False)
class _Lane:
    """Batches committed one after another: while one commits, the next one gathers."""

    queue: list[_Member] = field(default_factory=list)
    busy: bool = False  # a leader is committing; queued members wait for their turn


class GroupCommitter:
    """Commits the durable points of concurrent runs of one engine together, in up to `lanes`
    transactions at a time (so that one batch gathers while another waits for its commit)."""

    def __init__(self, engine: Engine, lease_seconds: float, *, lanes: int = LANES) -> None:
        self.engine = engine
        self.lease_seconds = lease_seconds
        self.lock = threading.Lock()
        self.lanes = [_Lane() for _ in range(lanes)]
        self.commits = 0  # transactions committed, for benchmarks and tests

    def commit(self, lease: Lease, events: list[dict[str, Any]], then: Then | None = None) -> None:
        """Return once `events` (and `then`'s writes) are committed under `lease` (Aborted: it
        is no longer held, and nothing was written)."""
        self._settle(_Member(lease, events, then))

    def claim(self) -> Lease | None:
        """A lease on a running execution nobody held (None: none is due)."""
        return self._settle(_Member(None)).claimed

    def _settle(self, member: _Member) -> _Member:
        with self.lock:
            # An idle lane commits at once; else join the batch that is gathering the most.
            lane = next((lane for lane in self.lanes if not lane.busy), None)
            leads = lane is not None
            if lane is None:
                lane = max(self.lanes, key=lambda lane: len(lane.queue))
            lane.queue.append(member)
            lane.busy = True
        if not leads:
            member.woken.wait()
        if not member.settled:  # woken to lead the lane's next batch, which holds it
            self._lead(lane)
        if member.error is not None:
            raise member.error
        return member

    def _lead(self, lane: _Lane) -> None:
        time.sleep(0)  # let runs about to flush too (most often held up by the GIL) queue first
        with self.lock:
            batch, lane.queue = lane.queue[:MAX_BATCH], lane.queue[MAX_BATCH:]
        try:
            self._commit(batch)
        except BaseException as exc:  # an interrupt: nobody of this batch may wait forever
            for member in batch:
                member.error = member.error or RuntimeError(f"group commit interrupted: {exc!r}")
            raise
        finally:
            with self.lock:
                following = lane.queue[0] if lane.queue else None
                lane.busy = following is not None
            for member in batch:
                member.settled = True
                member.woken.set()
            if following is not None:
                following.woken.set()

    def _commit(self, batch: list[_Member]) -> None:
        try:
            held = retrying(
                self.engine, lambda conn: self._flush(conn, batch), within=self.lease_seconds
            )
        except Exception as exc:
            if is_transient(exc) or len(batch) == 1:
                for member in batch:
                    member.error = exc
                return
            for member in batch:  # find the member that fails: each in a transaction of its own
                self._commit([member])
            return
        self.commits += 1
        for member in batch:
            if member.lease is not None and member.lease.name not in held:
                member.error = Aborted(member.lease.name)

    def _flush(self, conn: Connection, batch: list[_Member]) -> set[str]:
        """Write the batch in `conn`'s transaction: the names of the leases still held."""
        writes = [member for member in batch if member.lease is not None]
        held = self._held(conn, [member.lease for member in writes if member.lease])
        append_history(
            conn,
            [
                (name, event)
                for member in writes
                if (name := _name(member)) in held
                for event in member.events
            ],
        )
        for member in writes:
            if member.then is not None and _name(member) in held:
                member.then(conn)
        claims = [member for member in batch if member.lease is None]
        taken = iter(take_due(conn, len(claims), self.lease_seconds) if claims else [])
        for member in claims:
            member.claimed = next(taken, None)
        return held

    def _held(self, conn: Connection, leases: list[Lease]) -> set[str]:
        """Which of `leases` are still current, kept so until the commit: on PostgreSQL the
        rows are locked FOR SHARE (a take-over waits for this commit, then sees it), on SQLite
        the transaction holds the database's write lock. The leases are not extended here: the
        lease keeper does that; writing `lease_until`, an indexed column, at every durable point
        would add index entries to clean up at each one."""
        if not leases:
            return set()
        if conn.dialect.name == "postgresql":
            document = json.dumps([(lease.name, lease.generation) for lease in leases])
            return set(conn.execute(_HELD_LOCKED, {"leases": document}).scalars())
        pairs = [(lease.name, lease.generation) for lease in leases]
        return set(conn.execute(_HELD, {"leases": pairs}).scalars())


_HELD = select(executions.c.name).where(  # built once: building it costs more than running it
    executions.c.status == "RUNNING",
    tuple_(executions.c.name, executions.c.generation).in_(bindparam("leases", expanding=True)),
)
# PostgreSQL: the pairs bound as one JSON document (one statement whatever their number, so
# nothing is expanded and compiled again per batch size), the rows locked FOR SHARE.
_HELD_LOCKED = text(
    "SELECT name FROM workflow_executions WHERE status = 'RUNNING' AND (name, generation) IN "
    "(SELECT pair->>0, CAST(pair->>1 AS integer) "
    "FROM json_array_elements(CAST(:leases AS json)) AS pair) "
    "FOR SHARE OF workflow_executions"
)


def _name(member: _Member) -> str:
    assert member.lease is not None
    return member.lease.name
