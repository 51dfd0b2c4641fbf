"""Running a state machine in process: state processing, Retry/Catch, Wait, and an AWS-shaped
execution history. Tasks live in `tasks`, Map in `mapstate`, Parallel in `parallel`, their
concurrent lines in `fanout`, replay in `scope`."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from jetbridge.workflows.asl import intrinsics, paths
from jetbridge.workflows.asl.choice import matches, timestamp
from jetbridge.workflows.asl.errors import StatesError
from jetbridge.workflows.asl.mapstate import run_map
from jetbridge.workflows.asl.parallel import run_parallel
from jetbridge.workflows.asl.scope import (
    IterationAborted,
    Runtime,
    Scope,
    Suspended,
    iso,
    parse_iso,
)
from jetbridge.workflows.asl.tasks import run_task


def run_machine(machine: dict[str, Any], data: Any, context: dict[str, Any], scope: Scope) -> Any:
    name = machine["StartAt"]
    states = machine["States"]
    while True:
        scope.runtime.check_deadline()
        scope.checkpoint()
        state = states[name]
        kind = state["Type"]
        entered = scope.event(
            f"{kind}StateEntered",
            stateEnteredEventDetails={"name": name, "input": json.dumps(data)},
        )
        resumed = scope.replayed
        context["State"] = {"Name": name, "EnteredTime": entered["timestamp"], "RetryCount": 0}
        try:
            output, following = _run_state(name, state, data, context, scope, resumed)
        except IterationAborted:
            _stopped(kind, scope)
            raise
        except StatesError as error:
            handler = _catcher(state.get("Catch", []), error.error)
            if handler is None:
                raise
            error_output = {"Error": error.error, "Cause": error.cause}
            output = paths.write(data, handler.get("ResultPath", "$"), error_output)
            following = handler["Next"]
        scope.event(
            f"{kind}StateExited",
            stateExitedEventDetails={"name": name, "output": json.dumps(output)},
        )
        if following is None:
            return output
        name, data = following, output


def run_nested(
    machine: dict[str, Any], data: Any, execution: str, machine_name: str, parent: Runtime
) -> Any:
    """A child state machine (startExecution), run in this process with its own history."""
    child = Runtime(handlers=parent.handlers, sleep=parent.sleep, machines=parent.machines)
    context = new_context(execution, data, machine_name, child)
    return run_machine(machine, data, context, Scope(child))


def _stopped(kind: str, scope: Scope) -> None:
    """A Task or Wait that a failure elsewhere stopped records it, as Step Functions does (a
    Map or Parallel records its own abort). Histories from before these events hold the
    line's own abort at this place instead: they are not contradicted."""
    if kind in {"Task", "Wait"}:
        recorded = scope.peek()
        if recorded is None or recorded["type"] == f"{kind}StateAborted":
            scope.event(f"{kind}StateAborted")


def _catcher(catchers: list[dict[str, Any]], error: str) -> dict[str, Any] | None:
    return next((c for c in catchers if _covers(c["ErrorEquals"], error)), None)


def _covers(names: list[str], error: str) -> bool:
    if error == "States.Runtime":
        return "States.Runtime" in names
    if "States.ALL" in names or error in names:
        return True
    return "States.TaskFailed" in names and error not in {
        "States.Timeout",
        "States.HeartbeatTimeout",
    }


def _run_state(
    name: str,
    state: dict[str, Any],
    data: Any,
    context: dict[str, Any],
    scope: Scope,
    resumed: bool,
) -> tuple[Any, str | None]:
    kind = state["Type"]
    following = None if state.get("End") else state.get("Next")
    if kind == "Choice":
        effective = _input_path(state, data, context)
        for rule in state["Choices"]:
            if matches(rule, effective, context):
                return _output_path(state, effective, context), rule["Next"]
        if "Default" in state:
            return _output_path(state, effective, context), state["Default"]
        raise StatesError(
            "States.NoChoiceMatched", f"No Choice Rules matched and no Default in state '{name}'"
        )
    if kind == "Succeed":
        return _output_path(state, _input_path(state, data, context), context), None
    if kind == "Fail":
        error = (
            paths.read(data, state["ErrorPath"], context)
            if "ErrorPath" in state
            else state.get("Error", "States.Fail")
        )
        cause = (
            paths.read(data, state["CausePath"], context)
            if "CausePath" in state
            else state.get("Cause", "")
        )
        raise StatesError(str(error), str(cause))
    if kind == "Wait":
        started = context["State"]["EnteredTime"] if resumed else None
        _wait(state, _input_path(state, data, context), context, scope, started)
        return _output_path(state, _input_path(state, data, context), context), following
    effective = _input_path(state, data, context)
    if kind == "Pass":
        payload = (
            build(state["Parameters"], effective, context) if "Parameters" in state else effective
        )
        result = state.get("Result", payload)
    else:
        result = _with_retry(name, state, effective, context, scope)
        if "ResultSelector" in state:
            result = build(state["ResultSelector"], result, context)
    output = paths.write(data, state.get("ResultPath", "$"), result)
    return _output_path(state, output, context), following


def _input_path(state: dict[str, Any], data: Any, context: Any) -> Any:
    if "InputPath" in state and state["InputPath"] is None:
        return {}
    return paths.read(data, state.get("InputPath", "$"), context)


def _output_path(state: dict[str, Any], data: Any, context: Any) -> Any:
    if "OutputPath" in state and state["OutputPath"] is None:
        return {}
    return paths.read(data, state.get("OutputPath", "$"), context)


def build(template: Any, data: Any, context: Any) -> Any:
    """Parameters, ResultSelector, ItemSelector: `.$` keys take paths or intrinsic functions."""
    if isinstance(template, dict):
        out: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = (
                    intrinsics.evaluate(value, data, context)
                    if value.startswith("States.")
                    else paths.read(data, value, context)
                )
            else:
                out[key] = build(value, data, context)
        return out
    if isinstance(template, list):
        return [build(item, data, context) for item in template]
    return template


def _with_retry(
    name: str, state: dict[str, Any], effective: Any, context: dict[str, Any], scope: Scope
) -> Any:
    counts = [0] * len(state.get("Retry", []))
    while True:
        try:
            return _work(name, state, effective, context, scope)
        except StatesError as error:
            index = next(
                (
                    i
                    for i, r in enumerate(state.get("Retry", []))
                    if _covers(r["ErrorEquals"], error.error)
                ),
                None,
            )
            if index is None:
                raise
            retrier = state["Retry"][index]
            if counts[index] >= retrier.get("MaxAttempts", 3):
                raise
            delay = (
                retrier.get("IntervalSeconds", 1) * retrier.get("BackoffRate", 2.0) ** counts[index]
            )
            if "MaxDelaySeconds" in retrier:
                delay = min(delay, retrier["MaxDelaySeconds"])
            if retrier.get("JitterStrategy") == "FULL":
                delay = scope.runtime.rng.uniform(0, delay)
            counts[index] += 1
            context["State"]["RetryCount"] = sum(counts)
            pause(scope, delay)


def _work(
    name: str, state: dict[str, Any], effective: Any, context: dict[str, Any], scope: Scope
) -> Any:
    kind = state["Type"]
    if kind == "Parallel":
        payload = (
            build(state["Parameters"], effective, context) if "Parameters" in state else effective
        )
        return run_parallel(name, state["Branches"], payload, context, scope, run_machine)
    if kind == "Map":
        return run_map(name, state, effective, context, scope, run_machine, build)
    return run_task(name, state, effective, context, scope, build, run_nested)


def pause(scope: Scope, seconds: float) -> None:
    """Sleep, unless a resumed run had gone on from here; a real sleep ends early when the
    execution halts or an enclosing Map or Parallel aborts."""
    scope.checkpoint()
    if scope.peek() is not None:
        return
    runtime = scope.runtime
    if runtime.sleep is not None:
        runtime.sleep(seconds)
        return
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if runtime.halted.is_set() or any(abort.is_set() for abort in scope.aborts):
            scope.checkpoint()
        time.sleep(min(left, 0.1))


def _wait(
    state: dict[str, Any], data: Any, context: Any, scope: Scope, started: str | None
) -> None:
    scope.checkpoint()
    if scope.peek() is not None:
        return  # the earlier run finished this Wait
    if "Seconds" in state or "SecondsPath" in state:
        seconds = (
            state["Seconds"]
            if "Seconds" in state
            else paths.read(data, state["SecondsPath"], context)
        )
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise StatesError("States.Runtime", "Wait seconds must be a non-negative number")
        now = scope.runtime.now()
        elapsed = 0.0 if started is None else (now - parse_iso(started)).total_seconds()
        left = float(seconds) - elapsed
    else:
        value = (
            state["Timestamp"]
            if "Timestamp" in state
            else paths.read(data, state["TimestampPath"], context)
        )
        moment = timestamp(value)
        if moment is None:
            raise StatesError(
                "States.Runtime", f"Wait timestamp {value!r} is not an ISO 8601 timestamp"
            )
        left = (moment - scope.runtime.now()).total_seconds()
    if left > 0 and scope.runtime.tokens is not None:
        # A durable execution is parked until the Wait ends, holding no worker meanwhile.
        scope.runtime.check_deadline()
        raise Suspended([], time.time() + left)
    if left > 0:
        pause(scope, left)


def new_context(name: str | None, data: Any, machine_name: str, runtime: Runtime) -> dict[str, Any]:
    execution = name or str(uuid.uuid4())
    return {
        "Execution": {
            "Id": f"arn:jetbridge:states:execution:{machine_name}:{execution}",
            "Name": execution,
            "Input": data,
            "StartTime": iso(runtime.now()),
        },
        "StateMachine": {
            "Id": f"arn:jetbridge:states:stateMachine:{machine_name}",
            "Name": machine_name,
        },
    }
