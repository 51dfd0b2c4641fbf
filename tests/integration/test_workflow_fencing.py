"""Waits longer than the lease, callbacks with heartbeats and two workers on one database:
every side effect happens once, and a worker whose lease was taken over writes nothing."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, select, text, update
from sqlalchemy.pool import NullPool

from jetbridge.storage.db import create_database_engine, normalise_url
from jetbridge.storage.migrate import upgrade
from jetbridge.storage.schema import execution_events, executions
from jetbridge.workflows.engine import WorkflowEngine
from jetbridge.workflows.leases import Aborted, HistoryWriter, Lease, append_events, retrying
from support import aio

LEASE = 2.0
WAIT_THEN_TASK = {
    "StartAt": "Hold",
    "States": {
        "Hold": {"Type": "Wait", "Seconds": 5, "Next": "Effect"},
        "Effect": {"Type": "Task", "Resource": "Effect", "End": True},
    },
}
CALLBACK_THEN_TASK = {
    "StartAt": "Offer",
    "States": {
        "Offer": {
            "Type": "Task",
            "Resource": "Offer.waitForTaskToken",
            "Parameters": {"token.$": "$$.Task.Token", "id.$": "$.id"},
            "HeartbeatSeconds": 8,
            "TimeoutSeconds": 60,
            "ResultPath": "$.answer",
            "Next": "Effect",
        },
        "Effect": {"Type": "Task", "Resource": "Effect", "End": True},
    },
}


class Calls:
    """Counts a handler's calls per execution input id, from any thread."""

    def __init__(self) -> None:
        self.counts: Counter[Any] = Counter()
        self.lock = threading.Lock()
        self.tokens: dict[Any, str] = {}

    def effect(self, payload: Any) -> str:
        with self.lock:
            self.counts[payload["id"]] += 1
        return "done"

    def offer(self, payload: Any) -> None:
        with self.lock:
            self.counts[("offer", payload["id"])] += 1
            self.tokens[payload["id"]] = payload["token"]


def _workers(engine: Engine, calls: Calls, count: int = 2) -> list[WorkflowEngine]:
    handlers = {"Effect": calls.effect, "Offer": calls.offer}
    return [WorkflowEngine(engine, handlers, lease_seconds=LEASE, secret="s") for _ in range(count)]


def _run_until(
    workers: list[WorkflowEngine],
    done: Callable[[], bool],
    *,
    concurrency: int,
    timeout: float,
    beside: Callable[[threading.Event], None] | None = None,
) -> float:
    """Run every worker until `done()`; the seconds it took."""

    async def main() -> float:
        stop = asyncio.Event()
        began = time.monotonic()
        runs = [asyncio.create_task(w.run(stop, concurrency=concurrency)) for w in workers]
        quit_beside = threading.Event()
        side = asyncio.create_task(asyncio.to_thread(beside, quit_beside)) if beside else None
        try:
            while not done() and time.monotonic() - began < timeout:
                await asyncio.sleep(0.1)
            return time.monotonic() - began
        finally:
            stop.set()
            quit_beside.set()
            await asyncio.gather(*runs, *([side] if side else []))

    return aio.run(main())


def _statuses(engine: Engine) -> dict[str, str]:
    def read(conn: Connection) -> dict[str, str]:
        rows = conn.execute(select(executions.c.name, executions.c.status))
        return {row.name: row.status for row in rows}

    # Read again if a test cut the connection (its checkout ping passed just before the cut).
    return retrying(engine, read, within=30)


def _all_ended(engine: Engine, count: int) -> Callable[[], bool]:
    def ended() -> bool:
        statuses = _statuses(engine)
        return len(statuses) == count and "RUNNING" not in statuses.values()

    return ended


def test_a_wait_longer_than_the_lease_runs_the_next_task_once(engine: Engine) -> None:
    calls = Calls()
    workers = _workers(engine, calls)
    for index in range(6):
        workers[0].start(name=f"hold-{index}", definition=WAIT_THEN_TASK, input={"id": index})
    _run_until(workers, _all_ended(engine, 6), concurrency=3, timeout=60)
    assert set(_statuses(engine).values()) == {"SUCCEEDED"}
    assert calls.counts == Counter(dict.fromkeys(range(6), 1))
    for index in range(6):
        kinds = [e["type"] for e in workers[0].history(name=f"hold-{index}")]
        assert kinds.count("TaskScheduled") == 1
        assert kinds.count("WaitStateExited") == 1


def test_waiting_executions_hold_no_worker(engine: Engine) -> None:
    calls = Calls()
    (worker,) = _workers(engine, calls, count=1)
    for index in range(50):
        worker.start(name=f"many-{index}", definition=WAIT_THEN_TASK, input={"id": index})
    took = _run_until([worker], _all_ended(engine, 50), concurrency=4, timeout=90)
    assert set(_statuses(engine).values()) == {"SUCCEEDED"}
    assert calls.counts == Counter(dict.fromkeys(range(50), 1))
    # Four slots sleeping through 50 Waits of 5 s would take over 60 s.
    assert took < 40, f"50 Waits of 5 s took {took:.1f} s with 4 slots"


def test_a_callback_with_slow_heartbeats_runs_each_step_once(engine: Engine) -> None:
    calls = Calls()
    workers = _workers(engine, calls)
    for index in range(3):
        workers[0].start(name=f"offer-{index}", definition=CALLBACK_THEN_TASK, input={"id": index})

    def answer(quit: threading.Event) -> None:
        """Heartbeats 5 s apart (beyond the 2 s lease), then the answer."""
        while len(calls.tokens) < 3 and not quit.wait(0.1):
            pass
        for _ in range(2):
            if quit.wait(5):
                return
            for token in list(calls.tokens.values()):
                workers[1].send_task_heartbeat(token=token)
        for token in list(calls.tokens.values()):
            workers[1].send_task_success(token=token, output={"accepted": True})

    _run_until(workers, _all_ended(engine, 3), concurrency=2, timeout=60, beside=answer)
    assert set(_statuses(engine).values()) == {"SUCCEEDED"}
    expected = dict.fromkeys(range(3), 1) | {("offer", index): 1 for index in range(3)}
    assert calls.counts == Counter(expected)


def test_waits_inside_parallel_branches_and_map_iterations_run_what_follows_once(
    engine: Engine,
) -> None:
    calls = Calls()
    workers = _workers(engine, calls)
    line = {
        "StartAt": "Hold",
        "States": {
            "Hold": {"Type": "Wait", "Seconds": 3, "Next": "Effect"},
            "Effect": {"Type": "Task", "Resource": "Effect", "End": True},
        },
    }
    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [line, line],
                "Parameters": {"id.$": "$.id"},
                "ResultPath": None,
                "Next": "Each",
            },
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": line,
                "End": True,
            },
        },
    }
    workers[0].start(
        name="fan-out",
        definition=definition,
        input={"id": "branch", "items": [{"id": "a"}, {"id": "b"}]},
    )
    _run_until(workers, _all_ended(engine, 1), concurrency=2, timeout=60)
    assert _statuses(engine) == {"fan-out": "SUCCEEDED"}
    assert calls.counts == Counter({"branch": 2, "a": 1, "b": 1})


def _takeover(engine: Engine, taker: WorkflowEngine, name: str) -> Lease:
    """The lease lapses (its worker stalled) and another worker claims the execution."""
    with engine.begin() as conn:
        conn.execute(update(executions).values(lease_until=time.time() - 1))
    lease = taker.claim_named(name)
    assert lease is not None
    return lease


def test_a_worker_whose_lease_was_taken_over_runs_and_writes_nothing(engine: Engine) -> None:
    calls = Calls()
    first, second = _workers(engine, calls)
    first.start(name="fenced", definition=WAIT_THEN_TASK, input={"id": 1})
    stale = first.claim()
    assert stale is not None
    current = _takeover(engine, second, "fenced")
    assert current.generation == stale.generation + 1
    assert first.resume(stale) is None
    assert first.history(name="fenced") == []
    assert second.resume(current, sleep_through=10) is not None
    assert _statuses(engine) == {"fenced": "SUCCEEDED"}
    assert calls.counts == Counter({1: 1})


def test_a_stale_worker_cannot_commit_what_it_did_after_the_takeover(engine: Engine) -> None:
    first = WorkflowEngine(engine, {}, lease_seconds=300, secret="s")
    taken: list[Lease] = []

    def slow(payload: Any) -> str:
        """The worker stalls here long enough for its lease to lapse and be claimed."""
        if not taken:
            taken.append(_takeover(engine, second, "stalled"))
        return f"from generation {len(taken)}"

    second = WorkflowEngine(engine, {"Slow": slow}, lease_seconds=300, secret="s")
    first.handlers["Slow"] = slow
    definition = {
        "StartAt": "Slow",
        "States": {"Slow": {"Type": "Task", "Resource": "Slow", "End": True}},
    }
    first.start(name="stalled", definition=definition, input={})
    lease = first.claim()
    assert lease is not None
    assert first.resume(lease) is None  # its TaskSucceeded was refused
    assert first.history(name="stalled") == []
    with engine.connect() as conn:
        row = conn.execute(select(executions).where(executions.c.name == "stalled")).one()
    assert (row.status, row.generation) == ("RUNNING", lease.generation + 1)
    assert second.resume(taken[0]) is not None
    assert first.describe(name="stalled")["output"] == "from generation 1"
    with pytest.raises(Aborted):
        HistoryWriter(engine, lease, 300).record({"id": 99, "type": "TaskSucceeded"})
    assert len(first.history(name="stalled")) < 99


def test_history_appends_are_idempotent_per_execution_and_event_id(engine: Engine) -> None:
    workflows = WorkflowEngine(engine, {"Effect": lambda payload: payload}, secret="s")
    workflows.start(name="appended", definition=WAIT_THEN_TASK, input={"id": 1})
    events = [{"id": 1, "type": "ExecutionStarted"}, {"id": 2, "type": "WaitStateEntered"}]
    for _ in range(2):  # a commit retried after its answer was lost
        with engine.begin() as conn:
            append_events(conn, "appended", events)
    with engine.begin() as conn:
        append_events(conn, "appended", [*events, {"id": 3, "type": "WaitStateExited"}])
    with engine.connect() as conn:
        stored = conn.execute(
            select(execution_events.c.event_id).where(execution_events.c.execution == "appended")
        ).scalars()
        assert sorted(stored) == [1, 2, 3]


def test_a_task_that_works_longer_than_the_lease_keeps_it_and_runs_once(engine: Engine) -> None:
    calls = Calls()

    def slow(payload: Any) -> str:
        time.sleep(3 * LEASE)  # the work itself: three lease lengths
        return calls.effect(payload)

    workers = [
        WorkflowEngine(engine, {"Effect": slow}, lease_seconds=LEASE, secret="s") for _ in range(2)
    ]
    definition = {
        "StartAt": "Effect",
        "States": {"Effect": {"Type": "Task", "Resource": "Effect", "End": True}},
    }
    workers[0].start(name="long-task", definition=definition, input={"id": 1})
    _run_until(workers, _all_ended(engine, 1), concurrency=2, timeout=60)
    assert _statuses(engine) == {"long-task": "SUCCEEDED"}
    assert calls.counts == Counter({1: 1})


def test_an_execution_goes_on_once_after_its_database_connections_are_cut(
    postgres_url: str,
) -> None:
    """PostgreSQL only: a server can cut its clients' connections."""
    database_url = postgres_url
    engine = create_database_engine(database_url)
    upgrade(engine)
    calls = Calls()
    admin = create_engine(
        normalise_url(database_url),
        poolclass=NullPool,
        connect_args={"application_name": "cutter"},
    )

    def cut(payload: Any) -> str:
        """Every other connection to the database is terminated, as by a server restart."""
        with admin.begin() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND application_name <> 'cutter'"
                )
            )
        return calls.effect(payload)

    workflows = WorkflowEngine(
        engine, {"Cut": cut, "Effect": calls.effect}, lease_seconds=LEASE, secret="s"
    )
    definition = {
        "StartAt": "Cut",
        "States": {
            "Cut": {"Type": "Task", "Resource": "Cut", "ResultPath": None, "Next": "Effect"},
            "Effect": {"Type": "Task", "Resource": "Effect", "End": True},
        },
    }
    for index in range(3):
        workflows.start(name=f"cut-{index}", definition=definition, input={"id": index})
    try:
        _run_until([workflows], _all_ended(engine, 3), concurrency=3, timeout=60)
        ends = [workflows.describe(name=f"cut-{index}") for index in range(3)]
    finally:
        admin.dispose()
    assert [(end["status"], end["cause"]) for end in ends] == [("SUCCEEDED", None)] * 3
    assert calls.counts == Counter(dict.fromkeys(range(3), 2))  # Cut and Effect, once each
    for index in range(3):
        ids = [event["id"] for event in workflows.history(name=f"cut-{index}")]
        assert ids == list(range(1, len(ids) + 1))
    engine.dispose()


def test_a_synchronous_run_sleeps_through_its_wait_under_a_renewed_lease(engine: Engine) -> None:
    calls = Calls()
    syncing, other = _workers(engine, calls)
    ended: list[dict[str, Any]] = []

    def run_sync(quit: threading.Event) -> None:
        ended.append(syncing.run_sync(name="sync", definition=WAIT_THEN_TASK, input={"id": 1}))

    _run_until([other], lambda: bool(ended), concurrency=2, timeout=60, beside=run_sync)
    assert ended[0]["status"] == "SUCCEEDED"
    assert calls.counts == Counter({1: 1})
