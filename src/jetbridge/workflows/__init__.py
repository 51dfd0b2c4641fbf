"""Durable workflows in Amazon States Language.

Public API: `execute(definition, input, handlers=None)` runs a definition to completion in
process and returns an `ExecutionResult` (status, output, error, cause, history). A handler
that works for long calls `heartbeat()` to satisfy its task's HeartbeatSeconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jetbridge.workflows.asl.errors import InvalidDefinition, StatesError, TaskFailed
from jetbridge.workflows.asl.interpreter import new_context, run_machine
from jetbridge.workflows.asl.maprun import MapRuns
from jetbridge.workflows.asl.resources import check_resources
from jetbridge.workflows.asl.scope import (
    HistoryDiverged,
    Runtime,
    Scope,
    Suspended,
    TaskTokens,
    TimedOut,
    parse_iso,
)
from jetbridge.workflows.asl.tasks import heartbeat
from jetbridge.workflows.asl.validate import validate
from jetbridge.workflows.asl.validate_jsonata import inherit

__all__ = [
    "ExecutionResult",
    "InvalidDefinition",
    "TaskFailed",
    "check_resources",
    "execute",
    "heartbeat",
    "validate_definition",
]


@dataclass
class ExecutionResult:
    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def validate_definition(definition: str | Mapping[str, Any]) -> dict[str, Any]:
    """Parse and check a definition; raises InvalidDefinition naming the state and field."""
    if isinstance(definition, str):
        try:
            definition = json.loads(definition)
        except json.JSONDecodeError as exc:
            raise InvalidDefinition(
                f"definition: not valid JSON ({exc.msg} at line {exc.lineno})"
            ) from None
    body = dict(definition) if isinstance(definition, Mapping) else definition
    validate(body)
    assert isinstance(body, dict)
    return body


def execute(
    definition: str | Mapping[str, Any],
    input: Any = None,
    handlers: Mapping[str, Callable[[Any], Any]] | None = None,
    *,
    name: str | None = None,
    sleep: Callable[[float], None] | None = None,
    previous: list[dict[str, Any]] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    tokens: TaskTokens | None = None,
    machines: Mapping[str, Mapping[str, Any]] | None = None,
    machine_name: str | None = None,
    object_store: Path | None = None,
    read_url: Callable[[str], bytes] | None = None,
    map_runs: MapRuns | None = None,
) -> ExecutionResult:
    """Run a state machine to completion in this process, as Step Functions would.

    `previous` is the stored history of an interrupted run of the same execution: what it
    recorded is not done again (no finished task runs twice). `on_event` receives each new
    history event as it happens. With `tokens` (durable engine), a `.waitForTaskToken` task
    hands out its token and raises `Suspended` while the answer is outstanding; without, the
    handler's return value is the task's result. `machine_name` is the state machine's name in
    the context object (`StateMachine.Name`; by default from the definition's Comment).
    `read_url` reads an ItemReader's URL; `map_runs` runs Distributed Map children as
    executions of their own (without, they run in memory here).
    """
    # Every state names its query language from here on (its own or the machine's).
    machine = inherit(validate_definition(definition))
    data = json.loads(input) if isinstance(input, str | bytes) else ({} if input is None else input)
    runtime = Runtime(handlers=dict(handlers or {}), sleep=sleep, on_event=on_event, tokens=tokens)
    runtime.object_store = object_store
    runtime.read_url = read_url
    runtime.map_runs = map_runs
    runtime.machines = {
        name: inherit(validate_definition(body)) for name, body in (machines or {}).items()
    }
    runtime.resume_from(previous or [])
    scope = Scope(runtime)
    machine_name = machine_name or str(machine.get("Comment", "machine"))[:40] or "machine"
    context = new_context(name, data, machine_name, runtime)
    started = scope.event(
        "ExecutionStarted", executionStartedEventDetails={"input": json.dumps(data)}
    )
    context["Execution"]["StartTime"] = started["timestamp"]
    if "TimeoutSeconds" in machine:
        # A redriven execution has its whole TimeoutSeconds again from the redrive.
        began = parse_iso(runtime.redrive_time or started["timestamp"]).timestamp()
        runtime.deadline = began + float(machine["TimeoutSeconds"])
    try:
        output = run_machine(machine, data, context, scope)
    except Suspended as pause:
        if runtime.deadline is not None:
            pause.wake_at = min(pause.wake_at, runtime.deadline)
        raise
    except TimedOut:
        runtime.halted.clear()
        timed_out = {"executionTimedOutEventDetails": {"error": "States.Timeout"}}
        _end_of_history(runtime, scope, "ExecutionTimedOut", timed_out)
        return ExecutionResult("TIMED_OUT", None, "States.Timeout", "", runtime.history)
    except StatesError as error:
        runtime.halted.clear()
        scope.event(
            "ExecutionFailed",
            executionFailedEventDetails={"error": error.error, "cause": error.cause},
        )
        return ExecutionResult("FAILED", None, error.error, error.cause, runtime.history)
    except HistoryDiverged as diverged:
        # The run no longer matches its history, so no recorded position can be trusted.
        cause = f"the resumed execution diverged from its history: {diverged}"
        details = {"error": "States.Runtime", "cause": cause}
        runtime.append(
            ((-1,), 0), "ExecutionFailed", scope.last, {"executionFailedEventDetails": details}
        )
        return ExecutionResult("FAILED", None, "States.Runtime", cause, runtime.history)
    scope.event("ExecutionSucceeded", executionSucceededEventDetails={"output": json.dumps(output)})
    return ExecutionResult("SUCCEEDED", output, None, None, runtime.history)


def _end_of_history(runtime: Runtime, scope: Scope, kind: str, details: dict[str, Any]) -> None:
    """Record the execution's end after the last event of its own line: a run resumed past its
    deadline times out before replaying what its earlier run recorded."""
    if scope.peek() is None:
        scope.event(kind, **details)
        return
    own = [(position, event) for (path, position), event in runtime.known.items() if path == ()]
    position, last = max(own, key=lambda pair: pair[0])
    runtime.append(((), position + 1), kind, int(last["id"]), details)
