"""Durable workflows in Amazon States Language.

Public API: `execute(definition, input, handlers=None)` runs a definition to completion in
process and returns an `ExecutionResult` (status, output, error, cause, history).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jetbridge.workflows.asl.errors import InvalidDefinition, StatesError, TaskFailed
from jetbridge.workflows.asl.interpreter import (
    Runtime,
    TimedOut,
    new_context,
    outcomes,
    run_machine,
    wait_starts,
)
from jetbridge.workflows.asl.validate import validate

__all__ = ["ExecutionResult", "InvalidDefinition", "TaskFailed", "execute", "validate_definition"]


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
    sleep: Callable[[float], None] = time.sleep,
    previous: list[dict[str, Any]] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    token_for: Callable[[int], str] | None = None,
    machines: Mapping[str, Mapping[str, Any]] | None = None,
) -> ExecutionResult:
    """Run a state machine to completion in this process, as Step Functions would.

    `previous` is the stored history of an interrupted run of the same execution: tasks that
    finished then are not run again. `on_event` receives each history event as it happens.
    With `token_for`, a `.waitForTaskToken` task raises `Suspended` after handing out its token
    (durable engine); without it, the handler's return value is the task's result.
    """
    machine = validate_definition(definition)
    data = json.loads(input) if isinstance(input, str | bytes) else ({} if input is None else input)
    runtime = Runtime(
        handlers=dict(handlers or {}),
        sleep=sleep,
        replay=outcomes(previous or []),
        wait_starts=wait_starts(previous or []),
    )
    runtime.on_event = on_event
    runtime.token_for = token_for
    runtime.machines = {name: validate_definition(body) for name, body in (machines or {}).items()}
    if "TimeoutSeconds" in machine:
        runtime.deadline = time.monotonic() + float(machine["TimeoutSeconds"])
    context = new_context(
        name, data, str(machine.get("Comment", "machine"))[:40] or "machine", runtime
    )
    runtime.event("ExecutionStarted", executionStartedEventDetails={"input": json.dumps(data)})
    try:
        output = run_machine(machine, data, context, runtime)
    except TimedOut:
        runtime.event("ExecutionTimedOut")
        return ExecutionResult("TIMED_OUT", None, "States.Timeout", "", runtime.history)
    except StatesError as error:
        runtime.event(
            "ExecutionFailed",
            executionFailedEventDetails={"error": error.error, "cause": error.cause},
        )
        return ExecutionResult("FAILED", None, error.error, error.cause, runtime.history)
    runtime.event(
        "ExecutionSucceeded", executionSucceededEventDetails={"output": json.dumps(output)}
    )
    return ExecutionResult("SUCCEEDED", output, None, None, runtime.history)
