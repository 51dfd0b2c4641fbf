"""A Distributed Map's Map Run: each item (or batch) runs as a child execution of the Map's
ItemProcessor, with its own `$$.Execution` and its item as its input.

The parent's history records only the Map Run (`MapRunStarted`, then `MapRunSucceeded`,
`MapRunFailed` or `MapRunAborted`), as Step Functions' does. Who runs the children is the
runtime's `MapRuns`: the durable engine starts Standard children as executions of their own;
without one (an in-process run, an Express parent) the children run here, in memory.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from jetbridge.workflows.asl.errors import StatesError
from jetbridge.workflows.asl.scope import Halted, Runtime, Scope, TimedOut, parse_iso

EXCEEDED = "States.ExceedToleratedFailureThreshold"
UNSUCCESSFUL = ("FAILED", "TIMED_OUT", "ABORTED")
# At most this many children of an in-memory Map Run run at once.
IN_MEMORY_CONCURRENCY = 40
RunMachine = Callable[[dict[str, Any], Any, dict[str, Any], Scope], Any]
NewContext = Callable[[str, Any, str, Runtime], dict[str, Any]]


@dataclass
class MapRunPlan:
    """What a Map Run runs: the processor, each child's input and the run's settings."""

    id: str
    state: str
    machine: str  # the children's state machine name
    processor: dict[str, Any]
    inputs: list[Any]
    execution_type: str = "STANDARD"
    max_concurrency: int = 0  # 0: as many as allowed
    tolerated_count: int | None = None
    tolerated_percentage: float | None = None
    item_count: int = 0

    def exceeded(self, failures: int) -> bool:
        """Whether `failures` children failing fails the Map Run (no tolerance: any does)."""
        total = len(self.inputs)
        if self.tolerated_count is None and self.tolerated_percentage is None:
            return failures > 0
        over_count = self.tolerated_count is not None and failures > self.tolerated_count
        share = self.tolerated_percentage
        return over_count or (share is not None and failures * 100 > share * total)


@dataclass
class ChildEnd:
    """How one child execution ended."""

    index: int
    status: str
    output: Any = None
    input: Any = None
    error: str | None = None
    cause: str | None = None


@dataclass
class MapRunOutcome:
    """Where a Map Run stands: RUNNING (look again at `wake_at`), SUCCEEDED or FAILED; the
    children that ended, by index."""

    status: str
    ended: dict[int, ChildEnd] = field(default_factory=dict)
    error: str | None = None
    cause: str | None = None
    wake_at: float = 0.0


class MapRuns(Protocol):
    """What runs a Map Run's children (the durable engine provides one)."""

    def advance(
        self,
        plan: Callable[[], MapRunPlan],
        *,
        run_id: str,
        in_memory: Callable[[MapRunPlan], MapRunOutcome],
    ) -> MapRunOutcome:
        """Start the Map Run `run_id` (once: `plan` is asked for only then), start children
        as concurrency allows, and say where it stands; `in_memory` runs Express children
        in this process."""


def run_id(execution: str, state: str, started_event: int) -> str:
    """The Map Run's id: the same for the same Map state entry of the same execution, so a
    resumed or redriven parent finds the run it started."""
    where = f"jetbridge:maprun:{execution}/{state}#{started_event}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, where))


def child_name(run: str, index: int) -> str:
    return f"{run}:{index}"


def map_run_arn(children_machine: str, run: str) -> str:
    """The Map Run's ARN: the children's state machine (`<machine>/<state>`) and its id."""
    return f"arn:jetbridge:states:mapRun:{children_machine}:{run}"


def failure(plan: MapRunPlan, ended: dict[int, ChildEnd]) -> tuple[str, str] | None:
    """The Map Run's error and cause once its failed children exceed what it tolerates."""
    failures = sum(1 for end in ended.values() if end.status in UNSUCCESSFUL)
    if not plan.exceeded(failures):
        return None
    return EXCEEDED, (
        f"State '{plan.state}': {failures} of {len(plan.inputs)} child executions of Map Run "
        f"{plan.id} failed, more than tolerated"
    )


def run_in_memory(
    plan: MapRunPlan,
    parent: Runtime,
    run_machine: RunMachine,
    new_context: NewContext,
    on_end: Callable[[ChildEnd], None] | None = None,
) -> MapRunOutcome:
    """Run every child in this process, at most `max_concurrency` at once; once the failures
    exceed what the run tolerates, no further child starts and the running ones stop."""
    most = plan.max_concurrency or IN_MEMORY_CONCURRENCY
    stop = threading.Event()
    ended: dict[int, ChildEnd] = {}
    lock = threading.Lock()

    def one(index: int) -> ChildEnd:
        if stop.is_set() or parent.halted.is_set():
            aborted = ChildEnd(index, "ABORTED", error="States.Aborted", cause="the Map Run failed")
            aborted.input = plan.inputs[index]
            return aborted
        try:
            end = run_child(plan, index, parent, run_machine, new_context, stop)
        except BaseException:
            stop.set()  # the worker is failing: no further child starts
            raise
        end.input = plan.inputs[index]
        with lock:
            ended[index] = end
            if failure(plan, ended) is not None:
                stop.set()
        if on_end is not None:
            on_end(end)
        return end

    workers = max(1, min(most, IN_MEMORY_CONCURRENCY, len(plan.inputs) or 1))
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="maprun") as pool:
        for end in pool.map(one, range(len(plan.inputs))):
            ended[end.index] = end
    if parent.halted.is_set():
        raise Halted
    found = failure(plan, ended)
    if found is not None:
        return MapRunOutcome("FAILED", ended, *found)
    return MapRunOutcome("SUCCEEDED", ended)


def run_child(
    plan: MapRunPlan,
    index: int,
    parent: Runtime,
    run_machine: RunMachine,
    new_context: NewContext,
    stop: threading.Event,
) -> ChildEnd:
    """One child execution in memory: its own runtime, history and `$$.Execution`."""
    child = Runtime(
        handlers=parent.handlers,
        sleep=parent.sleep,
        machines=parent.machines,
        object_store=parent.object_store,
        read_url=parent.read_url,
    )
    child.halted = _Either(stop, parent.halted)  # type: ignore[assignment]
    data = plan.inputs[index]
    context = new_context(child_name(plan.id, index), data, plan.machine, child)
    scope = Scope(child)
    try:
        started = scope.event(
            "ExecutionStarted", executionStartedEventDetails={"input": json.dumps(data)}
        )
        if "TimeoutSeconds" in plan.processor:
            began = parse_iso(started["timestamp"]).timestamp()
            child.deadline = began + float(plan.processor["TimeoutSeconds"])
        output = run_machine(plan.processor, data, context, scope)
    except TimedOut:
        return ChildEnd(index, "TIMED_OUT", error="States.Timeout", cause="")
    except StatesError as error:
        return ChildEnd(index, "FAILED", error=error.error, cause=error.cause)
    except Halted:
        return ChildEnd(index, "ABORTED", error="States.Aborted", cause="the Map Run stopped")
    return ChildEnd(index, "SUCCEEDED", output=output)


class _Either:
    """A child's halt: set by the child itself, or by its Map Run or parent stopping."""

    def __init__(self, first: threading.Event, second: threading.Event) -> None:
        self.own = threading.Event()
        self.first = first
        self.second = second

    def is_set(self) -> bool:
        return self.own.is_set() or self.first.is_set() or self.second.is_set()

    def set(self) -> None:
        self.own.set()

    def clear(self) -> None:
        self.own.clear()
