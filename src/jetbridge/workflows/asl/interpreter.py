"""Running a state machine in process: state processing, Retry/Catch, Wait, and an AWS-shaped
execution history. Tasks live in `tasks`, Map in `mapstate`, Parallel in `parallel`, their
concurrent lines in `fanout`, replay in `scope`."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from jetbridge.workflows.asl import intrinsics, jsonata_states, paths, variables
from jetbridge.workflows.asl.choice import matches, timestamp
from jetbridge.workflows.asl.errors import StatesError
from jetbridge.workflows.asl.jsonata import QUERY_ERROR
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
            output, following, assigned = _run_state(name, state, data, context, scope, resumed)
            shown = _within_limit(output, name)
        except IterationAborted:
            _stopped(kind, scope)
            raise
        except StatesError as failure:
            error = _located(failure, name, entered["id"])
            handler = _catcher(state.get("Catch", []), error.error)
            if handler is None and error is not failure:
                raise error from None
            if handler is None:
                raise
            error_output = {"Error": error.error, "Cause": error.cause}
            if jsonata_states.is_jsonata(state):
                output, assigned = jsonata_states.caught(handler, error_output, data, context)
            else:
                assigned = _assign(handler.get("Assign"), error_output, context)
                output = paths.write(data, handler.get("ResultPath", "$"), error_output)
            following = handler["Next"]
            shown = json.dumps(output)
        details: dict[str, Any] = {"name": name, "output": shown}
        assigned = variables.recorded(scope.peek(), assigned)
        if assigned:
            details.update(variables.details(assigned))
        scope.event(f"{kind}StateExited", stateExitedEventDetails=details)
        variables.assign(context, assigned)
        if following is None:
            return output
        name, data = following, output


# Step Functions' limit on the data passed between states: 256 KiB of UTF-8 JSON.
MAX_PAYLOAD = 256 * 1024


def _located(error: StatesError, name: str, entered: int) -> StatesError:
    """A States.Runtime or States.QueryEvaluationError error names the state where it
    happened, as Step Functions says it."""
    if error.error not in {"States.Runtime", QUERY_ERROR} or error.located:
        return error
    located = StatesError(
        error.error,
        f"An error occurred while executing the state '{name}' (entered at the event id "
        f"#{entered}). {error.cause}",
    )
    located.located = True
    return located


def _within_limit(output: Any, name: str) -> str:
    """The output as JSON text, or States.DataLimitExceeded when it is over the limit."""
    shown = json.dumps(output)
    if len(shown) > MAX_PAYLOAD // 4 and len(shown.encode()) > MAX_PAYLOAD:
        raise StatesError(
            "States.DataLimitExceeded",
            f"The state/task '{name}' returned a result with a size exceeding the maximum "
            f"number of bytes service limit.",
        )
    return shown


def run_nested(
    machine: dict[str, Any], data: Any, execution: str, machine_name: str, parent: Runtime
) -> Any:
    """A child state machine (startExecution), run in this process with its own history."""
    child = Runtime(
        handlers=parent.handlers,
        sleep=parent.sleep,
        machines=parent.machines,
        object_store=parent.object_store,
    )
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
    if error in {"States.Runtime", "States.DataLimitExceeded"}:
        return error in names
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
) -> tuple[Any, str | None, dict[str, Any]]:
    """The state's output, the next state's name (None at the end) and what it assigns."""
    kind = state["Type"]
    if jsonata_states.is_jsonata(state):
        return _run_jsonata(name, state, data, context, scope, resumed)
    following = None if state.get("End") else state.get("Next")
    if kind == "Choice":
        effective = _input_path(state, data, context)
        for rule in state["Choices"]:
            if matches(rule, effective, context):
                assigned = _assign(rule.get("Assign"), effective, context)
                return _output_path(state, effective, context), rule["Next"], assigned
        if "Default" in state:
            assigned = _assign(state.get("Assign"), effective, context)
            return _output_path(state, effective, context), state["Default"], assigned
        raise StatesError(
            "States.NoChoiceMatched", f"No Choice Rules matched and no Default in state '{name}'"
        )
    if kind == "Succeed":
        return _output_path(state, _input_path(state, data, context), context), None, {}
    if kind == "Fail":
        error = _fail_field(state, "Error", data, context, "States.Fail")
        cause = _fail_field(state, "Cause", data, context, "")
        raise StatesError(error, cause)
    if kind == "Wait":
        started = context["State"]["EnteredTime"] if resumed else None
        effective = _input_path(state, data, context)
        _wait(state, effective, context, scope, started)
        assigned = _assign(state.get("Assign"), effective, context)
        return _output_path(state, effective, context), following, assigned
    effective = _input_path(state, data, context)
    if kind == "Pass":
        payload = (
            build(state["Parameters"], effective, context) if "Parameters" in state else effective
        )
        result = state.get("Result", payload)
    else:
        result = _with_retry(name, state, effective, context, scope)
        _within_limit(result, name)
        if "ResultSelector" in state:
            result = build(state["ResultSelector"], result, context)
    assigned = _assign(state.get("Assign"), result, context)
    output = paths.write(data, state.get("ResultPath", "$"), result)
    return _output_path(state, output, context), following, assigned


def _run_jsonata(
    name: str,
    state: dict[str, Any],
    data: Any,
    context: dict[str, Any],
    scope: Scope,
    resumed: bool,
) -> tuple[Any, str | None, dict[str, Any]]:
    started = context["State"]["EnteredTime"] if resumed else None

    def work(name: str, resolved: dict[str, Any], effective: Any, context: dict[str, Any]) -> Any:
        result = _with_retry(name, resolved, effective, context, scope)
        if resolved["Type"] == "Task":
            _within_limit(result, name)
        return result

    def wait(resolved: dict[str, Any], effective: Any) -> None:
        _wait(resolved, effective, context, scope, started)

    return jsonata_states.run_state(name, state, data, context, work, wait)


def _fail_field(state: dict[str, Any], field: str, data: Any, context: Any, default: str) -> str:
    """A Fail state's Error or Cause: literal, or from its Path (a path or an intrinsic)."""
    if f"{field}Path" not in state:
        return str(state.get(field, default))
    path = state[f"{field}Path"]
    value = (
        intrinsics.evaluate(path, data, context)
        if path.startswith("States.")
        else paths.read(data, path, context)
    )
    if not isinstance(value, str):
        raise StatesError(
            "States.Runtime",
            f"The {field}Path '{path}' selected {json.dumps(value)}; expected a string",
        )
    return value


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
                    else paths.read(data, value, context, field=key)
                )
            else:
                out[key] = build(value, data, context)
        return out
    if isinstance(template, list):
        return [build(item, data, context) for item in template]
    return template


def _assign(template: Any, result: Any, context: dict[str, Any]) -> dict[str, Any]:
    """What an `Assign` block assigns, `$` being the state's result."""
    if not template:
        return {}
    assigned: dict[str, Any] = build(template, result, context)
    return assigned


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
    jsonata = jsonata_states.is_jsonata(state)
    shape = jsonata_states.arguments if jsonata else build
    if kind == "Parallel":
        payload = (
            shape(state["Parameters"], effective, context) if "Parameters" in state else effective
        )
        return run_parallel(name, state["Branches"], payload, context, scope, run_machine)
    if kind == "Map":
        select = jsonata_states.item_selector if jsonata else build
        return run_map(name, state, effective, context, scope, run_machine, select, new_context)
    return run_task(name, state, effective, context, scope, shape, run_nested)


def pause(scope: Scope, seconds: float) -> None:
    """Sleep, unless a resumed run had gone on from here; a real sleep ends early when the
    execution halts, its TimeoutSeconds runs out or an enclosing Map or Parallel aborts."""
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
        runtime.check_deadline()  # the machine's TimeoutSeconds ends a long sleep too
        time.sleep(min(left, 0.1))


def _wait(
    state: dict[str, Any], data: Any, context: Any, scope: Scope, started: str | None
) -> None:
    scope.checkpoint()
    if scope.peek() is not None:
        return  # the earlier run finished this Wait
    if "Seconds" in state or "SecondsPath" in state:
        seconds = state.get("Seconds", 0)
        if "SecondsPath" in state:
            seconds = _seconds(state["SecondsPath"], data, context)
        now = scope.runtime.now()
        elapsed = 0.0 if started is None else (now - parse_iso(started)).total_seconds()
        left = float(seconds) - elapsed
    else:
        value = state.get("Timestamp")
        if "TimestampPath" in state:
            value = _read_wait(state["TimestampPath"], "TimestampPath", data, context)
        moment = timestamp(value)
        if moment is None:
            raise StatesError(
                "States.Runtime",
                "The TimestampPath parameter does not reference a valid ISO-8601 extended "
                f"offset date-time format string: {state.get('TimestampPath')} == {value}",
            )
        left = (moment - scope.runtime.now()).total_seconds()
    if left > 0 and scope.runtime.tokens is not None:
        # A durable execution is parked until the Wait ends, holding no worker meanwhile.
        scope.runtime.check_deadline()
        raise Suspended([], time.time() + left)
    if left > 0:
        pause(scope, left)


def _read_wait(path: str, field: str, data: Any, context: Any) -> Any:
    try:
        return paths.read(data, path, context)
    except StatesError:
        raise StatesError(
            "States.Runtime", f"The {field} parameter does not reference an input value: {path}"
        ) from None


def _seconds(path: str, data: Any, context: Any) -> int:
    """A Wait's SecondsPath value: a non-negative integer, or Step Functions' own complaint."""
    seconds = _read_wait(path, "SecondsPath", data, context)
    shown = f"{path} == {json.dumps(seconds)}"
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise StatesError(
            "States.Runtime", f"The SecondsPath parameter cannot be parsed as a long value: {shown}"
        )
    if seconds < 0:
        raise StatesError(
            "States.Runtime", f"The SecondsPath parameter references a negative value: {shown}"
        )
    if seconds > MAX_WAIT:
        raise StatesError(
            "States.Runtime", f"The SecondsPath parameter is over {MAX_WAIT} seconds: {shown}"
        )
    return seconds


MAX_WAIT = 99_999_999


def new_context(name: str | None, data: Any, machine_name: str, runtime: Runtime) -> dict[str, Any]:
    """The context object (`$$`) of a new execution."""
    execution = name or str(uuid.uuid4())
    context: dict[str, Any] = {
        "Execution": {
            "Id": f"arn:jetbridge:states:execution:{machine_name}:{execution}",
            "Name": execution,
            "Input": data,
            "StartTime": iso(runtime.now()),
            "RoleArn": f"arn:jetbridge:iam::role/{machine_name}",
            "RedriveCount": runtime.redrive_count,
        },
        "StateMachine": {
            "Id": f"arn:jetbridge:states:stateMachine:{machine_name}",
            "Name": machine_name,
        },
    }
    if runtime.redrive_time is not None:
        context["Execution"]["RedriveTime"] = runtime.redrive_time
    return context
