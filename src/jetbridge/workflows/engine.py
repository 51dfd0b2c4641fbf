"""Durable executions: history events are stored in order, and every outcome of work done
outside the interpreter (a task's result, a callback's submission, the start of a Wait) is
committed before the execution goes on; a worker that dies is replaced by another (or by itself
after a restart), which resumes the execution without running any finished task again.

Events between two such points (state entered and exited, Pass, Choice, Map and Parallel
bookkeeping) are deterministic: they are written together with the next outcome, so a chain of
Pass and Choice states costs one transaction, and a crash before that commit only loses events
the resumed run makes again, identically.

Executions are leased, and the lease is fenced by a generation (see `leases`): a worker whose
lease was taken over writes nothing more. An execution whose callback tasks and Wait states all
wait is parked: no worker holds it until an answer wakes it or its lease, set to the earliest
moment something is due, lapses; the worker that claims it then goes on (or sees the timeout).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Select, bindparam, func, insert, select, update

from jetbridge.errors import Conflict, Forbidden, InvalidRequest, NotFound
from jetbridge.jsonlimits import (
    JsonLimitExceeded,
    JsonLimits,
    check_json,
    loads_within,
    stored_json,
)
from jetbridge.loops import poll_until_stopped
from jetbridge.ops import tracing
from jetbridge.storage.schema import execution_events, executions
from jetbridge.storage.transient import Outage
from jetbridge.workflows import (
    ExecutionResult,
    check_resources,
    execute,
    observed,
    validate_definition,
)
from jetbridge.workflows.asl.errors import InvalidDefinition
from jetbridge.workflows.asl.scope import REDRIVEN, SUPERSEDED, Suspended, iso
from jetbridge.workflows.express import check_express, run_express
from jetbridge.workflows.group_commit import GroupCommitter
from jetbridge.workflows.leases import (
    Aborted,
    HistoryWriter,
    Lease,
    LeaseKeeper,
    append_events,
    held,
    held_by,
    lapsed,
    retrying,
    take,
)
from jetbridge.workflows.machines import (
    CALLER_MACHINES,
    Handler,
    SystemMachine,
    refuse_caller_start,
)
from jetbridge.workflows.map_runs import (
    DurableMapRuns,
    abort_runs_of,
    describe_map_run,
    list_map_runs,
    parent_of,
)
from jetbridge.workflows.redrive import (
    MAX_HISTORY_EVENTS,
    REDRIVABLE,
    REDRIVABLE_SECONDS,
    supersede,
)
from jetbridge.workflows.tokens import LEGACY_WAITING, TaskTimedOut, TaskTokenStore, wake

__all__ = ["Aborted", "Lease", "SystemMachine", "TaskTimedOut", "WorkflowEngine"]
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
MAX_INPUT_BYTES = 256 * 1024  # an execution's input and a task's output, as Step Functions allows
# A Wait with less left than this sleeps in the worker (lease renewed) rather than parking.
SHORT_WAIT = 0.5
SYNC_POLL = 0.05  # how often a synchronous run looks at an execution another worker holds


class WorkflowEngine:
    """Executions of callers' state machines, which may use the public `handlers` and the
    built-in integrations, and of the platform's own machines (`add_system_machine`)."""

    def __init__(
        self,
        engine: Engine,
        handlers: Mapping[str, Handler],
        *,
        lease_seconds: float = 300.0,
        secret: str | None = None,
        json_limits: JsonLimits | None = None,
        max_input_bytes: int = MAX_INPUT_BYTES,
        object_store: Path | None = None,
        read_url: Callable[[str], bytes] | None = None,
        group_commit: bool = True,
    ) -> None:
        # Task tokens are signed; without a configured secret they hold for this process only.
        self.tokens = TaskTokenStore(engine, secret or secrets.token_hex(16))
        self.engine = engine
        self.handlers = dict(handlers)
        self.object_store = object_store  # Distributed Map's ItemReader and ResultWriter
        self.read_url = read_url  # an ItemReader's file:// and https:// URLs (None: refused)
        self.system: dict[str, SystemMachine] = {}
        self.lease_seconds = lease_seconds
        self.keeper = LeaseKeeper(engine, lease_seconds)
        # Durable points of executions run at the same time share a transaction (off: each
        # commits alone, as before group commit).
        self.group = GroupCommitter(engine, lease_seconds) if group_commit else None
        self.json_limits = json_limits or JsonLimits()
        self.max_input_bytes = max_input_bytes
        self.listeners: list[Callable[[str, str], None]] = []

    def add_system_machine(
        self, machine: str, *, prefix: str, handlers: Mapping[str, Handler]
    ) -> None:
        """Run `machine` for the platform with `handlers` no other state machine can reach."""
        if machine in CALLER_MACHINES or not prefix:
            raise ValueError(f"{machine!r} with prefix {prefix!r} cannot be a system machine")
        self.system[machine] = SystemMachine(machine, prefix, dict(handlers))

    def start(
        self,
        *,
        name: str,
        definition: Mapping[str, Any] | str,
        input: Any,
        machine: str = "machine",
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """Start a caller's execution once (a second start with the same name returns the
        first); its Tasks may name only public handlers and integrations. `tenant` owns it
        (None: the platform)."""
        refuse_caller_start(self.system, name=name, machine=machine)
        self._check(definition, "definition")
        self._check(input, "input")
        body = validate_definition(definition)
        check_resources(body, self.handlers)
        return self._start(name, body, input, machine, tenant)

    def run_express(
        self,
        *,
        name: str,
        definition: Mapping[str, Any] | str,
        input: Any,
        machine: str = "machine",
    ) -> dict[str, Any]:
        """Run an Express execution in this thread and return its end (StartSyncExecution):
        nothing is stored, so it is neither listed nor resumed (`jetbridge.workflows.express`)."""
        refuse_caller_start(self.system, name=name, machine=machine)
        self._check(definition, "definition")
        self._check(input, "input")
        body = validate_definition(definition)
        check_express(body)
        check_resources(body, self.handlers)
        return run_express(
            body,
            input,
            self.handlers,
            name=name,
            machine=machine,
            store=self.object_store,
            read_url=self.read_url,
        )

    def start_system(
        self, *, machine: str, name: str, definition: Mapping[str, Any] | str, input: Any
    ) -> dict[str, Any]:
        """Start an execution of one of the platform's own machines (idempotent by name)."""
        system = self.system[machine]
        if not name.startswith(system.prefix):
            raise ValueError(f"{machine} executions are named {system.prefix}...; not {name!r}")
        body = validate_definition(definition)
        check_resources(body, system.handlers)
        return self._start(name, body, input, machine)

    def _start(
        self, name: str, body: dict[str, Any], input: Any, machine: str, tenant: str | None = None
    ) -> dict[str, Any]:
        with self.engine.begin() as conn:
            existing = conn.execute(select(executions).where(executions.c.name == name)).first()
            if existing is not None:
                if existing.machine != machine:
                    raise Conflict(f"execution {name!r} exists for another state machine")
                if json.loads(existing.input) != input:
                    raise Conflict(f"execution {name!r} exists with a different input")
                return _describe(existing)
            conn.execute(
                insert(executions).values(
                    name=name,
                    machine=machine,
                    definition=json.dumps(body),
                    status="RUNNING",
                    input=json.dumps(input),
                    started_at=time.time(),
                    tenant=tenant,
                    traceparent=tracing.current_traceparent(),
                )
            )
        observed.started(machine)
        return self.describe(name=name)

    def _check(self, document: Any, where: str) -> None:
        """Documents an execution keeps must be within bounds, so every later read succeeds
        (a definition given as JSON text is checked as the document it holds)."""
        try:
            if isinstance(document, str) and where == "definition":
                loads_within(document, self.json_limits, where=where)
            else:
                check_json(document, self.json_limits, where=where)
        except JsonLimitExceeded as exc:
            raise InvalidRequest(str(exc)) from None
        except ValueError:
            return  # not JSON text: validation names what is wrong
        if where != "definition":
            size, limit = (
                len(json.dumps(document, ensure_ascii=False).encode()),
                self.max_input_bytes,
            )
            if size > limit:
                raise InvalidRequest(
                    f"{where}: {size} bytes of JSON, more than the {limit}-byte limit"
                )

    def describe(self, *, name: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(executions).where(executions.c.name == name)).first()
        if row is None:
            raise NotFound(f"execution {name!r} does not exist")
        return _describe(row)

    def definition(self, *, name: str) -> dict[str, Any]:
        """The state machine the execution runs."""
        with self.engine.connect() as conn:
            text = conn.execute(
                select(executions.c.definition).where(executions.c.name == name)
            ).scalar()
        if text is None:
            raise NotFound(f"execution {name!r} does not exist")
        body: dict[str, Any] = json.loads(text)
        return body

    def history(self, *, name: str) -> list[dict[str, Any]]:
        self.describe(name=name)
        with self.engine.connect() as conn:
            return _history(conn, name)

    def describe_map_run(self, *, map_run: str) -> dict[str, Any]:
        """DescribeMapRun: a Distributed Map's Map Run, its settings and its counts."""
        return describe_map_run(self.engine, map_run)

    def list_map_runs(self, *, name: str) -> list[dict[str, Any]]:
        """ListMapRuns: the Map Runs the execution `name` started."""
        self.describe(name=name)
        return list_map_runs(self.engine, name)

    def list(
        self,
        *,
        status: str | None = None,
        limit: int = 100,
        tenant: str | None = None,
        all_tenants: bool = True,
        map_run: str | None = None,
    ) -> list[dict[str, Any]]:
        """Executions, newest first; `map_run`: only that Map Run's child executions."""
        query = select(executions).order_by(executions.c.started_at.desc()).limit(limit)
        if not all_tenants:
            query = query.where(executions.c.tenant == tenant)
        if status:
            query = query.where(executions.c.status == status)
        if map_run is not None:
            query = query.where(executions.c.map_run == map_run)
        with self.engine.connect() as conn:
            return [_describe(row) for row in conn.execute(query)]

    def stop(self, *, name: str, error: str = "Aborted", cause: str = "") -> dict[str, Any]:
        """Stop a caller's execution; the platform's own are refused (Forbidden)."""
        self._refuse_system(name, "stopped")
        return self.stop_system(name=name, error=error, cause=cause)

    def stop_system(self, *, name: str, error: str = "Aborted", cause: str = "") -> dict[str, Any]:
        """Stop any execution: for the platform's own code."""
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(executions)
                .where(executions.c.name == name, executions.c.status == "RUNNING")
                .values(
                    status="ABORTED",
                    error=error,
                    cause=cause,
                    stopped_at=time.time(),
                    lease_until=None,
                )
            )
            if changed.rowcount:
                abort_runs_of(conn, name)
        if changed.rowcount == 0:
            self.describe(name=name)
            raise Conflict(f"execution {name!r} is not running")
        described = self.describe(name=name)
        observed.ended(described["machine"], "ABORTED", described["started_at"])
        return described

    def redrive(self, *, name: str) -> dict[str, Any]:
        """RedriveExecution: a caller's FAILED, TIMED_OUT or ABORTED execution goes on from
        its unsuccessful step (`jetbridge.workflows.redrive`); Conflict if it cannot be
        redriven, among them one running (a redrive that lost a race to another included)."""
        self._refuse_system(name, "redriven")
        return self.redrive_system(name=name)

    def redrive_system(self, *, name: str) -> dict[str, Any]:
        """Redrive any execution: for the platform's own code."""
        with self.engine.begin() as conn:
            row = conn.execute(select(executions).where(executions.c.name == name)).first()
            if row is None:
                raise NotFound(f"execution {name!r} does not exist")
            reason = _not_redrivable(row, time.time())
            if reason is not None:
                raise Conflict(f"execution {name!r} cannot be redriven: {reason}")
            history = [
                json.loads(body)
                for body in conn.execute(
                    select(execution_events.c.body)
                    .where(execution_events.c.execution == name)
                    .order_by(execution_events.c.event_id)
                ).scalars()
            ]
            if len(history) >= MAX_HISTORY_EVENTS:
                raise Conflict(
                    f"execution {name!r} cannot be redriven: its history reached the "
                    f"{MAX_HISTORY_EVENTS}-event limit"
                )
            now = time.time()
            # Only the status seen above is changed: of two redrives at once, one wins.
            won = conn.execute(
                update(executions)
                .where(
                    executions.c.name == name,
                    executions.c.status == row.status,
                    executions.c.redrive_count == row.redrive_count,
                )
                .values(
                    status="RUNNING",
                    output=None,
                    error=None,
                    cause=None,
                    stopped_at=None,
                    lease_until=None,
                    parked=False,
                    woken=False,
                    generation=executions.c.generation + 1,  # fences the earlier attempt
                    redrive_count=executions.c.redrive_count + 1,
                    redriven_at=now,
                )
            )
            if won.rowcount == 0:
                raise Conflict(f"execution {name!r} is already being redriven")
            last = conn.execute(
                select(func.max(execution_events.c.event_id)).where(
                    execution_events.c.execution == name
                )
            ).scalar()
            event = {
                "id": int(last or 0) + 1,
                "previousEventId": int(last or 0),
                "timestamp": iso(datetime.fromtimestamp(now, UTC)),
                "type": REDRIVEN,
                "executionRedrivenEventDetails": {"redriveCount": row.redrive_count + 1},
                SUPERSEDED: supersede(history),
            }
            append_events(conn, name, [event])
        observed.started(row.machine)
        return self.describe(name=name)

    def _refuse_system(self, name: str, done: str) -> None:
        with self.engine.connect() as conn:
            machine = conn.execute(
                select(executions.c.machine).where(executions.c.name == name)
            ).scalar()
        if machine in self.system:
            raise Forbidden(
                f"execution {name!r} belongs to the platform's {machine} state machine; "
                f"it cannot be {done} through the API"
            )

    def handlers_of(self, machine: str) -> Mapping[str, Handler]:
        """The handlers an execution of `machine` may reach."""
        system = self.system.get(machine)
        return observed.timed_handlers(self.handlers if system is None else system.handlers)

    def claim(self) -> Lease | None:
        """Lease one running execution that nobody holds (new, due, or whose worker died)."""
        query = (
            select(executions.c.name)
            .where(executions.c.status == "RUNNING", lapsed(time.time()))
            .order_by(executions.c.started_at)
            .limit(1)
        )
        if self.engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        elif not _any(self.engine, query):
            return None  # idle on SQLite: found by a read, without taking the write lock
        if self.group is not None:
            return self.group.claim()
        with self.engine.begin() as conn:
            name = conn.execute(query).scalar()
            return None if name is None else take(conn, name, self.lease_seconds)

    def run_one(self, *, claimed: Callable[[], object] | None = None) -> bool:
        """Claim one due execution and run it (False: none was due); `claimed` is called
        between the claim and the run."""
        lease = self.claim()
        if lease is None:
            return False
        if claimed is not None:
            claimed()
        self.resume(lease)
        return True

    def resume(self, lease: Lease, *, sleep_through: float = SHORT_WAIT) -> ExecutionResult | None:
        """Run (or continue) an execution under `lease` until it ends (its result) or parks
        (None); a Wait with no more than `sleep_through` seconds left is slept through. None
        too when the lease was taken over: then this worker has written nothing since."""
        try:
            while True:
                with self.keeper.keeping(lease):
                    outcome = self._advance(lease, sleep_through)
                if isinstance(outcome, ExecutionResult):
                    break
                if self._park(lease, outcome):
                    return None
        except Aborted:
            return None
        for listener in self.listeners:
            listener(lease.name, outcome.status)
        return outcome

    def _advance(self, lease: Lease, sleep_through: float) -> ExecutionResult | float:
        """Run until the end (the result) or a pause worth parking for (when to look again)."""
        while True:
            writer = HistoryWriter(
                self.engine,
                lease,
                self.lease_seconds,
                group=self.group.commit if self.group is not None else None,
            )
            with self.engine.connect() as conn:
                row = conn.execute(_ROW, {"name": lease.name}).one()
                if (row.status, row.generation) != ("RUNNING", lease.generation):
                    raise Aborted(lease.name)  # nothing runs once the lease is another's
                previous = _history(conn, lease.name)
            runs = DurableMapRuns(
                self.engine,
                parent=lease.name,
                tenant=row.tenant,
                redrive_count=row.redrive_count,
            )
            runs.redrive_child = self._redrive_child
            try:
                with observed.run_span(row):
                    result = execute(
                        json.loads(row.definition),
                        json.loads(row.input),
                        self.handlers_of(row.machine),
                        name=lease.name,
                        previous=previous,
                        on_event=observed.counting_transitions(row.machine, writer.record),
                        tokens=self.tokens.for_execution(lease.name),
                        machine_name=row.machine,
                        object_store=self.object_store,
                        read_url=self.read_url,
                        map_runs=runs,
                    )
            except InvalidDefinition as invalid:
                # Stored under an earlier, laxer validation: end it instead of retrying forever.
                cause = f"the stored definition is not valid: {invalid}"
                result = ExecutionResult("FAILED", None, "States.Runtime", cause, [])
            except Suspended as pause:
                writer.commit()
                left = pause.wake_at - time.time()
                if pause.tokens or left > sleep_through:
                    return pause.wake_at
                if sleep_through == float("inf"):
                    self._meanwhile(lease.name, pause.wake_at)
                else:
                    time.sleep(max(left, 0.0))
                continue
            self._finish(writer, result, row.map_run)
            observed.ended(row.machine, result.status, row.started_at)
            return result

    def _redrive_child(self, name: str) -> None:
        self.redrive_system(name=name)

    def _meanwhile(self, name: str, until: float) -> None:
        """A synchronous run waiting until `until`: meanwhile run other due executions (its
        Distributed Map's children, when no other worker runs them), until something wakes
        it."""
        while time.time() < until and not self._take_wake(name):
            if not self.run_one():
                time.sleep(max(0.0, min(until - time.time(), SYNC_POLL)))

    def _take_wake(self, name: str) -> bool:
        """Whether something woke the execution since it last looked (and it looks now)."""
        with self.engine.begin() as conn:
            taken = conn.execute(
                update(executions)
                .where(executions.c.name == name, executions.c.woken.is_(True))
                .values(woken=False)
            )
        return bool(taken.rowcount)

    def _finish(
        self, writer: HistoryWriter, result: ExecutionResult, map_run: str | None = None
    ) -> None:
        def end(conn: Connection) -> None:
            # A Map Run still running when its parent ends (failed elsewhere, timed out)
            # is aborted with its children.
            abort_runs_of(conn, writer.lease.name)
            if map_run is not None:
                parent = parent_of(conn, map_run)
                if parent is not None:
                    wake(conn, parent)  # the parent looks at its Map Run again now
            ended = {
                "lease_name": writer.lease.name,
                "lease_generation": writer.lease.generation,
                "status": result.status,
                "output": json.dumps(result.output),
                "error": result.error,
                "cause": result.cause,
                "stopped_at": time.time(),
            }
            conn.execute(_END, ended)

        if self.group is not None:
            self.group.commit(writer.lease, writer.pending, then=end)
            return

        def alone(conn: Connection) -> None:
            writer.flush(conn)
            end(conn)

        retrying(self.engine, alone, within=self.lease_seconds)

    def _park(self, lease: Lease, wake_at: float) -> bool:
        """Release the execution until `wake_at` unless an answer arrived since it was claimed
        (then False: run it again now)."""
        with self.engine.begin() as conn:
            parked = conn.execute(
                update(executions)
                .where(held(lease), executions.c.woken.is_(False))
                .values(parked=True, lease_until=wake_at)
            )
            if parked.rowcount:
                return True
            again = conn.execute(
                update(executions)
                .where(held(lease))
                .values(woken=False, lease_until=time.time() + self.lease_seconds)
            )
        return again.rowcount == 0

    def send_task_success(self, *, token: str, output: Any) -> None:
        """Answer a `.waitForTaskToken` task: the execution resumes with `output`."""
        self._check(output, "output")
        self._refuse_system(self.tokens.execution_of(token), "answered")
        self.tokens.answer(token, output=output)

    def send_task_failure(self, *, token: str, error: str, cause: str = "") -> None:
        """Fail a `.waitForTaskToken` task with `error` (catchable and retriable as named)."""
        self._refuse_system(self.tokens.execution_of(token), "answered")
        self.tokens.answer(token, error=error, cause=cause)

    def send_task_heartbeat(self, *, token: str) -> None:
        """The work behind a `.waitForTaskToken` task goes on: its HeartbeatSeconds restart."""
        self._refuse_system(self.tokens.execution_of(token), "answered")
        self.tokens.heartbeat(token)

    def run_sync(
        self, *, name: str, definition: Mapping[str, Any] | str, input: Any
    ) -> dict[str, Any]:
        """Start and run to the end in this thread (StartSyncExecution): its Waits are slept
        through under a renewed lease; it returns early only while callback tasks wait. If
        another worker holds the execution meanwhile, this waits for it to get that far."""
        self.start(name=name, definition=definition, input=input)
        while True:
            lease = self.claim_named(name)
            if lease is not None:
                self.resume(lease, sleep_through=float("inf"))
            described = self.describe(name=name)
            if described["status"] != "RUNNING" or self._awaits_answer(name):
                return described
            time.sleep(SYNC_POLL)

    def _awaits_answer(self, name: str) -> bool:
        """Whether a callback task waits (an execution parked by earlier versions has a lease
        at LEGACY_WAITING and no token row)."""
        with self.engine.connect() as conn:
            lease_until = conn.execute(
                select(executions.c.lease_until).where(executions.c.name == name)
            ).scalar()
        return (lease_until or 0) >= LEGACY_WAITING or self.tokens.waiting(name)

    def claim_named(self, name: str) -> Lease | None:
        with self.engine.begin() as conn:
            return take(conn, name, self.lease_seconds)

    async def run(self, stop: asyncio.Event, *, concurrency: int = 4, poll: float = 0.05) -> None:
        """Run due executions until `stop`, `concurrency` at a time, each in a thread of a pool
        of their own (the loop's default pool has too few threads, and is shared)."""
        name = "workflow workers"
        outage = Outage(name, logging.getLogger("jetbridge.loops"))
        threads = concurrent.futures.ThreadPoolExecutor(concurrency, "workflow")
        # Idle workers take turns to look for due executions, so an idle engine asks the
        # database once a `poll`, not `concurrency` times; a worker that finds one wakes the
        # next idle worker at once, as more may be due.
        loop = asyncio.get_running_loop()
        more = asyncio.Event()
        turn = asyncio.Lock()
        step = functools.partial(self.run_one, claimed=lambda: loop.call_soon_threadsafe(more.set))
        try:
            await asyncio.gather(
                *(
                    poll_until_stopped(
                        step,
                        stop,
                        interval=poll,
                        name=name,
                        wakeup=more,
                        outage=outage,
                        threads=threads,
                        turn=turn,
                    )
                    for _ in range(concurrency)
                )
            )
        finally:
            threads.shutdown(wait=False)  # never block the event loop on a run still going


def _history(conn: Connection, name: str) -> list[dict[str, Any]]:
    rows = conn.execute(_HISTORY, {"name": name})
    return [json.loads(body) for body in rows.scalars()]


# Statements of every run, built once with their values bound (building them per run cost
# more than running them).
_ROW = select(executions).where(executions.c.name == bindparam("name"))
_HISTORY = (
    select(execution_events.c.body)
    .where(execution_events.c.execution == bindparam("name"))
    .order_by(execution_events.c.event_id)
)
_END = (  # an execution's end, written only while its lease is still held
    update(executions)
    .where(held_by(bindparam("lease_name"), bindparam("lease_generation")))
    .values(
        status=bindparam("status"),
        output=bindparam("output"),
        error=bindparam("error"),
        cause=bindparam("cause"),
        stopped_at=bindparam("stopped_at"),
        lease_until=None,
    )
)


def _any(engine: Engine, query: Select[Any]) -> bool:
    """Whether `query` finds a row, read without taking SQLite's write lock."""
    with engine.connect() as conn:
        conn.execution_options(readonly=True)
        return conn.execute(query).first() is not None


def _not_redrivable(row: Any, now: float) -> str | None:
    """Why the execution cannot be redriven now (None: it can), as Step Functions says."""
    if row.status == "RUNNING":
        return "Execution is RUNNING and cannot be redriven."
    if row.status == "SUCCEEDED":
        return "Execution is SUCCEEDED and cannot be redriven."
    if row.status not in REDRIVABLE:
        return f"Execution is {row.status} and cannot be redriven."
    if row.stopped_at is not None and now - row.stopped_at > REDRIVABLE_SECONDS:
        return "Execution redrivable period exceeded."
    return None


def _describe(row: Any) -> dict[str, Any]:
    reason = _not_redrivable(row, time.time())
    return {
        "name": row.name,
        "machine": row.machine,
        "status": row.status,
        "input": stored_json(row.input, where="input"),
        "output": stored_json(row.output, where="output") if row.output else None,
        "error": row.error,
        "cause": row.cause,
        "started_at": row.started_at,
        "stopped_at": row.stopped_at,
        "tenant": row.tenant,
        "mapRun": row.map_run,
        "redriveCount": row.redrive_count,
        "redriveDate": row.redriven_at,
        "redriveStatus": "REDRIVABLE" if reason is None else "NOT_REDRIVABLE",
        "redriveStatusReason": reason,
    }
