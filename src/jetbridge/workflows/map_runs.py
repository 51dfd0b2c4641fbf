"""Map Runs of the durable engine (Step Functions' DescribeMapRun, ListMapRuns and
ListExecutions by Map Run).

A Map Run's row is written once, with its children's inputs, under an id derived from its Map
state's place in the parent's history, so a resumed parent finds the run it started. Standard
children are executions of their own (`workflow_executions.map_run`), named `<run>:<index>`,
started in the same transaction that counts the running ones: never more than MaxConcurrency
run, and none starts twice. Workers run them as any execution; each one's end wakes the parent.

Express children run in the parent's worker, in memory: nothing of them is stored but their
ends, once the run is over. A worker that dies meanwhile takes them with it (at most once): the
run that the resumed parent finds still RUNNING has failed.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from jetbridge.errors import Conflict, NotFound
from jetbridge.storage.schema import executions, map_runs
from jetbridge.workflows.asl.distributed_state import DISTRIBUTED_CONCURRENCY
from jetbridge.workflows.asl.maprun import (
    UNSUCCESSFUL,
    ChildEnd,
    MapRunOutcome,
    MapRunPlan,
    child_name,
    failure,
    map_run_arn,
)
from jetbridge.workflows.asl.scope import iso

# How often a parent looks at its Map Run when no child's end woke it sooner.
POLL_SECONDS = 2.0
LOST = "the worker running its Express child executions stopped; they run at most once"
InMemory = Callable[[MapRunPlan], MapRunOutcome]


class DurableMapRuns:
    """The Map Runs of one parent execution (`MapRuns` for its interpreter)."""

    def __init__(
        self, engine: Engine, *, parent: str, tenant: str | None, redrive_count: int
    ) -> None:
        self.engine = engine
        self.parent = parent
        self.tenant = tenant
        self.redrive_count = redrive_count
        self.redrive_child: Callable[[str], None] = lambda name: None

    def advance(
        self, plan: Callable[[], MapRunPlan], *, run_id: str, in_memory: InMemory
    ) -> MapRunOutcome:
        row = _row(self.engine, run_id)
        if row is None:
            self._insert(plan())
            row = _row(self.engine, run_id)
            assert row is not None
        elif row.status in {"FAILED", "ABORTED"} and self.redrive_count > row.parent_redrive:
            self._redrive(row)
            row = _row(self.engine, run_id)
            assert row is not None
        if row.execution_type == "EXPRESS":
            return self._express(row, in_memory)
        with self.engine.begin() as conn:
            return _standard(conn, row)

    def _insert(self, plan: MapRunPlan) -> None:
        values = {
            "id": plan.id,
            "execution": self.parent,
            "state": plan.state,
            "tenant": self.tenant,
            "machine": plan.machine,
            "status": "RUNNING",
            "execution_type": plan.execution_type,
            "max_concurrency": plan.max_concurrency,
            "tolerated_count": plan.tolerated_count,
            "tolerated_percentage": plan.tolerated_percentage,
            "processor": json.dumps(plan.processor),
            "inputs": json.dumps(plan.inputs),
            "item_count": plan.item_count,
            "started_at": time.time(),
            "parent_redrive": self.redrive_count,
        }
        with self.engine.begin() as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            conn.execute(dialect.insert(map_runs).values(values).on_conflict_do_nothing())

    def _redrive(self, row: Any) -> None:
        """Redrive the run's unsuccessful children (an Express run starts all again)."""
        if row.execution_type == "STANDARD":
            with self.engine.connect() as conn:
                names = conn.execute(
                    select(executions.c.name).where(
                        executions.c.map_run == row.id, executions.c.status.in_(UNSUCCESSFUL)
                    )
                ).scalars()
                unsuccessful = list(names)
            for name in unsuccessful:
                # Conflict: redriven already (a redrive that stopped half-way goes on here).
                with contextlib.suppress(Conflict):
                    self.redrive_child(name)
        with self.engine.begin() as conn:
            conn.execute(
                update(map_runs)
                .where(map_runs.c.id == row.id, map_runs.c.parent_redrive == row.parent_redrive)
                .values(
                    status="RUNNING",
                    error=None,
                    cause=None,
                    stopped_at=None,
                    counts=None,
                    redrive_count=map_runs.c.redrive_count + 1,
                    redriven_at=time.time(),
                    parent_redrive=self.redrive_count,
                )
            )

    def _express(self, row: Any, in_memory: InMemory) -> MapRunOutcome:
        if row.status == "RUNNING" and row.counts is not None:
            return _lost(self.engine, row)
        if row.status != "RUNNING":
            return _recorded(row)
        with self.engine.begin() as conn:
            # Marks the run as under way: a parent that finds it so later knows it was lost.
            conn.execute(update(map_runs).where(map_runs.c.id == row.id).values(counts="[]"))
        outcome = in_memory(_plan(row))
        ends = [_end_record(end) for _, end in sorted(outcome.ended.items())]
        with self.engine.begin() as conn:
            conn.execute(
                update(map_runs)
                .where(map_runs.c.id == row.id)
                .values(
                    status=outcome.status,
                    error=outcome.error,
                    cause=outcome.cause,
                    counts=json.dumps(ends),
                    stopped_at=time.time(),
                )
            )
        return outcome


def _row(engine: Engine, run_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(map_runs).where(map_runs.c.id == run_id)).first()


def _plan(row: Any) -> MapRunPlan:
    return MapRunPlan(
        id=row.id,
        state=row.state,
        machine=row.machine,
        processor=json.loads(row.processor),
        inputs=json.loads(row.inputs),
        execution_type=row.execution_type,
        max_concurrency=row.max_concurrency,
        tolerated_count=row.tolerated_count,
        tolerated_percentage=row.tolerated_percentage,
        item_count=row.item_count,
    )


def _end_record(end: ChildEnd) -> dict[str, Any]:
    return {
        "index": end.index,
        "status": end.status,
        "output": end.output,
        "error": end.error,
        "cause": end.cause,
        "input": end.input,
    }


def _recorded(row: Any) -> MapRunOutcome:
    """An Express run's outcome as stored when it ended."""
    ended = {int(record["index"]): ChildEnd(**record) for record in json.loads(row.counts or "[]")}
    return MapRunOutcome(row.status, ended, row.error, row.cause)


def _lost(engine: Engine, row: Any) -> MapRunOutcome:
    error = "States.Runtime"
    cause = f"Map Run {row.id}: {LOST}"
    with engine.begin() as conn:
        conn.execute(
            update(map_runs)
            .where(map_runs.c.id == row.id, map_runs.c.status == "RUNNING")
            .values(status="FAILED", error=error, cause=cause, stopped_at=time.time())
        )
    return MapRunOutcome("FAILED", {}, error, cause)


def _children(conn: Connection, run_id: str) -> list[Any]:
    return list(
        conn.execute(
            select(
                executions.c.name,
                executions.c.status,
                executions.c.input,
                executions.c.output,
                executions.c.error,
                executions.c.cause,
            ).where(executions.c.map_run == run_id)
        )
    )


def _index(name: str) -> int:
    return int(name.rsplit(":", 1)[1])


def _ends(children: list[Any]) -> dict[int, ChildEnd]:
    ended = {}
    for child in children:
        if child.status == "RUNNING":
            continue
        index = _index(child.name)
        ended[index] = ChildEnd(
            index,
            child.status,
            output=json.loads(child.output) if child.output else None,
            error=child.error,
            cause=child.cause,
            input=json.loads(child.input),
        )
    return ended


def _standard(conn: Connection, row: Any) -> MapRunOutcome:
    """Look at a Standard run's children: end the run, or start more of them."""
    children = _children(conn, row.id)
    ended = _ends(children)
    if row.status != "RUNNING":
        return MapRunOutcome(row.status, ended, row.error, row.cause)
    plan = _plan(row)
    found = failure(plan, ended)
    if found is not None:
        _abort_children(conn, row.id, "States.ExceedToleratedFailureThreshold", found[1])
        _end_run(conn, row.id, "FAILED", *found)
        return MapRunOutcome("FAILED", _ends(_children(conn, row.id)), *found)
    running = sum(1 for child in children if child.status == "RUNNING")
    if len(ended) == len(plan.inputs):
        _end_run(conn, row.id, "SUCCEEDED", None, None)
        return MapRunOutcome("SUCCEEDED", ended)
    started = {_index(child.name) for child in children}
    free = (plan.max_concurrency or DISTRIBUTED_CONCURRENCY) - running
    due = [index for index in range(len(plan.inputs)) if index not in started][: max(free, 0)]
    _start_children(conn, row, plan, due)
    return MapRunOutcome("RUNNING", ended, wake_at=time.time() + POLL_SECONDS)


def _start_children(conn: Connection, row: Any, plan: MapRunPlan, due: list[int]) -> None:
    if not due:
        return
    now = time.time()
    rows = [
        {
            "name": child_name(row.id, index),
            "machine": row.machine,
            "definition": row.processor,
            "status": "RUNNING",
            "input": json.dumps(plan.inputs[index]),
            "started_at": now,
            "tenant": row.tenant,
            "map_run": row.id,
        }
        for index in due
    ]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(executions).on_conflict_do_nothing(), rows)


def _abort_children(conn: Connection, run_id: str, error: str, cause: str) -> None:
    conn.execute(
        update(executions)
        .where(executions.c.map_run == run_id, executions.c.status == "RUNNING")
        .values(
            status="ABORTED",
            error=error,
            cause=cause,
            stopped_at=time.time(),
            lease_until=None,
        )
    )


def _end_run(
    conn: Connection, run_id: str, status: str, error: str | None, cause: str | None
) -> None:
    conn.execute(
        update(map_runs)
        .where(map_runs.c.id == run_id)
        .values(status=status, error=error, cause=cause, stopped_at=time.time())
    )


def abort_runs_of(conn: Connection, parent: str) -> None:
    """The parent was stopped: its running Map Runs and their running children are aborted."""
    ids = list(conn.execute(_RUNS_OF, {"parent": parent}).scalars())
    for run_id in ids:
        _abort_children(conn, run_id, "States.Aborted", "the parent execution was stopped")
        _end_run(conn, run_id, "ABORTED", "States.Aborted", "the parent execution was stopped")


# Run at every execution's end: built once, its value bound.
_RUNS_OF = select(map_runs.c.id).where(
    map_runs.c.execution == bindparam("parent"), map_runs.c.status == "RUNNING"
)


def parent_of(conn: Connection, run_id: str) -> str | None:
    found: str | None = conn.execute(
        select(map_runs.c.execution).where(map_runs.c.id == run_id)
    ).scalar()
    return found


def describe_map_run(engine: Engine, run_id: str) -> dict[str, Any]:
    """A Map Run as DescribeMapRun answers: status, settings, and counts of its items and
    child executions."""
    with engine.connect() as conn:
        row = conn.execute(select(map_runs).where(map_runs.c.id == run_id)).first()
        if row is None:
            raise NotFound(f"map run {run_id!r} does not exist")
        children = conn.execute(
            select(executions.c.name, executions.c.status, executions.c.generation).where(
                executions.c.map_run == run_id
            )
        ).all()
    inputs = json.loads(row.inputs)  # written by the engine itself, of any size
    states: dict[int, str] = {}
    if row.execution_type == "EXPRESS":
        for record in json.loads(row.counts or "[]"):
            states[int(record["index"])] = record["status"]
    for child in children:
        waiting = child.status == "RUNNING" and child.generation == 0
        states[_index(child.name)] = "PENDING" if waiting else child.status
    batched = row.item_count != len(inputs)
    sizes = [len(i["Items"]) if batched else 1 for i in inputs]
    return {
        "mapRunId": row.id,
        "mapRunArn": map_run_arn(row.machine, row.id),
        "executionName": row.execution,
        "stateName": row.state,
        "tenant": row.tenant,
        "status": row.status,
        "executionType": row.execution_type,
        "startDate": _date(row.started_at),
        "stopDate": _date(row.stopped_at),
        "maxConcurrency": row.max_concurrency,
        "toleratedFailureCount": row.tolerated_count or 0,
        "toleratedFailurePercentage": row.tolerated_percentage or 0,
        "error": row.error,
        "cause": row.cause,
        "itemCounts": _counts(states, sizes),
        "executionCounts": _counts(states, [1] * len(inputs)),
        "redriveCount": row.redrive_count,
        "redriveDate": _date(row.redriven_at),
    }


COUNTED = {
    "PENDING": "pending",
    "RUNNING": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "TIMED_OUT": "timedOut",
    "ABORTED": "aborted",
}


def _counts(states: dict[int, str], sizes: list[int]) -> dict[str, int]:
    """How many children (or items, by each child's batch size) stand in each state; a child
    not started yet is pending."""
    counts = dict.fromkeys(COUNTED.values(), 0)
    for index, size in enumerate(sizes):
        counts[COUNTED[states.get(index, "PENDING")]] += size
    return {**counts, "total": sum(sizes)}


def list_map_runs(engine: Engine, parent: str) -> list[dict[str, Any]]:
    """ListMapRuns: the Map Runs an execution started, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(map_runs.c.id, map_runs.c.machine, map_runs.c.state, map_runs.c.started_at)
            .where(map_runs.c.execution == parent)
            .order_by(map_runs.c.started_at)
        ).all()
    return [
        {
            "mapRunId": row.id,
            "mapRunArn": map_run_arn(row.machine, row.id),
            "executionName": parent,
            "stateName": row.state,
            "startDate": _date(row.started_at),
        }
        for row in rows
    ]


def _date(moment: float | None) -> str | None:
    return None if moment is None else iso(datetime.fromtimestamp(moment, UTC))
