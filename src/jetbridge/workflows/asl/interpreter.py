"""Running a state machine in process: state processing, Retry/Catch, Parallel, Map, Wait, and
an AWS-shaped execution history."""

from __future__ import annotations

import concurrent.futures
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jetbridge.workflows.asl import intrinsics, paths
from jetbridge.workflows.asl.choice import matches, timestamp
from jetbridge.workflows.asl.errors import StatesError

Handler = Callable[[Any], Any]
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="asl-task")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Runtime:
    handlers: dict[str, Handler]
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    rng: random.Random = field(default_factory=random.Random)
    history: list[dict[str, Any]] = field(default_factory=list)
    deadline: float | None = None
    replay: list[tuple[str, Any]] = field(default_factory=list)
    wait_starts: list[datetime] = field(default_factory=list)
    on_event: Callable[[dict[str, Any]], None] | None = None
    # Durable runs pause at `.waitForTaskToken` tasks; in-process runs take the handler's result.
    token_for: Callable[[int], str] | None = None
    callbacks: int = 0
    machines: dict[str, dict[str, Any]] = field(default_factory=dict)

    def event(self, kind: str, **details: Any) -> None:
        number = len(self.history) + 1
        stamp = _iso(self.now())
        record = {"id": number, "previousEventId": number - 1, "timestamp": stamp, "type": kind}
        record.update(details)
        self.history.append(record)
        if self.on_event is not None:
            self.on_event(record)

    def wait_started(self) -> datetime | None:
        """When the current Wait first began, if this execution is resuming it."""
        return self.wait_starts.pop(0) if self.wait_starts else None

    def recorded(self) -> tuple[str, Any] | None:
        """The next task outcome from a previous run of this execution, if any (crash resume)."""
        return self.replay.pop(0) if self.replay else None


class TimedOut(Exception):
    """The state machine's own TimeoutSeconds ran out."""


def run_machine(
    machine: dict[str, Any], data: Any, context: dict[str, Any], runtime: Runtime
) -> Any:
    name = machine["StartAt"]
    states = machine["States"]
    while True:
        if runtime.deadline is not None and time.monotonic() > runtime.deadline:
            raise TimedOut
        state = states[name]
        kind = state["Type"]
        context["State"] = {"Name": name, "EnteredTime": _iso(runtime.now()), "RetryCount": 0}
        runtime.event(
            f"{kind}StateEntered",
            stateEnteredEventDetails={"name": name, "input": json.dumps(data)},
        )
        try:
            output, following = _run_state(name, state, data, context, runtime)
        except StatesError as error:
            handler = _catcher(state.get("Catch", []), error.error)
            if handler is None:
                raise
            error_output = {"Error": error.error, "Cause": error.cause}
            output = paths.write(data, handler.get("ResultPath", "$"), error_output)
            following = handler["Next"]
        runtime.event(
            f"{kind}StateExited",
            stateExitedEventDetails={"name": name, "output": json.dumps(output)},
        )
        if following is None:
            return output
        name, data = following, output


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
    name: str, state: dict[str, Any], data: Any, context: dict[str, Any], runtime: Runtime
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
        _wait(state, _input_path(state, data, context), context, runtime)
        return _output_path(state, _input_path(state, data, context), context), following
    effective = _input_path(state, data, context)
    if kind == "Pass":
        payload = (
            build(state["Parameters"], effective, context) if "Parameters" in state else effective
        )
        result = state.get("Result", payload)
    else:
        result = _with_retry(name, state, effective, context, runtime)
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
    name: str, state: dict[str, Any], effective: Any, context: dict[str, Any], runtime: Runtime
) -> Any:
    counts = [0] * len(state.get("Retry", []))
    while True:
        try:
            return _work(name, state, effective, context, runtime)
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
                delay = runtime.rng.uniform(0, delay)
            counts[index] += 1
            context["State"]["RetryCount"] = sum(counts)
            runtime.sleep(delay)


def _work(
    name: str, state: dict[str, Any], effective: Any, context: dict[str, Any], runtime: Runtime
) -> Any:
    kind = state["Type"]
    if kind == "Parallel":
        payload = (
            build(state["Parameters"], effective, context) if "Parameters" in state else effective
        )
        runtime.event("ParallelStateStarted")
        results = [
            run_machine(branch, payload, dict(context), runtime) for branch in state["Branches"]
        ]
        runtime.event("ParallelStateSucceeded")
        return results
    if kind == "Map":
        return _map(state, effective, context, runtime)
    return _task(name, state, effective, context, runtime)


def _map(
    state: dict[str, Any], effective: Any, context: dict[str, Any], runtime: Runtime
) -> list[Any]:
    items = paths.read(effective, state.get("ItemsPath", "$"), context)
    if not isinstance(items, list):
        raise StatesError("States.Runtime", "ItemsPath must select an array")
    processor: dict[str, Any] = state.get("ItemProcessor") or state["Iterator"]
    selector = state.get("ItemSelector", state.get("Parameters"))
    runtime.event("MapStateStarted", mapStateStartedEventDetails={"length": len(items)})
    results = []
    for index, item in enumerate(items):
        item_context = {**context, "Map": {"Item": {"Index": index, "Value": item}}}
        item_input = build(selector, effective, item_context) if selector is not None else item
        runtime.event(
            "MapIterationStarted",
            mapIterationStartedEventDetails={"name": context["State"]["Name"], "index": index},
        )
        results.append(run_machine(processor, item_input, item_context, runtime))
        runtime.event(
            "MapIterationSucceeded",
            mapIterationSucceededEventDetails={"name": context["State"]["Name"], "index": index},
        )
    runtime.event("MapStateSucceeded")
    return results


HTTP_RESOURCE = "arn:aws:states:::http:invoke"
NESTED = "arn:aws:states:::states:startExecution"


def _nested(resource: str, runtime: Runtime) -> Handler:
    """Start another state machine (registered by name) and, with `.sync`, wait for its end."""

    def start(payload: Any) -> Any:
        if not isinstance(payload, dict) or not isinstance(payload.get("StateMachineArn"), str):
            raise StatesError("States.Runtime", "startExecution needs Parameters.StateMachineArn")
        machine_name = payload["StateMachineArn"].rsplit(":", 1)[-1]
        machine = runtime.machines.get(machine_name)
        if machine is None:
            raise StatesError("StateMachineDoesNotExist", f"no state machine {machine_name!r}")
        execution = str(payload.get("Name") or uuid.uuid4())
        child = Runtime(handlers=runtime.handlers, sleep=runtime.sleep, machines=runtime.machines)
        data = payload.get("Input", {})
        arn = f"arn:jetbridge:states:execution:{machine_name}:{execution}"
        if not resource.endswith((".sync", ".sync:2")):
            run_machine(machine, data, new_context(execution, data, machine_name, child), child)
            return {"ExecutionArn": arn, "StartDate": _iso(runtime.now())}
        try:
            output = run_machine(
                machine, data, new_context(execution, data, machine_name, child), child
            )
        except StatesError as error:
            raise StatesError(
                "States.TaskFailed", json.dumps({"Error": error.error, "Cause": error.cause})
            ) from None
        shown = output if resource.endswith(":2") else json.dumps(output)
        return {"ExecutionArn": arn, "Output": shown, "Status": "SUCCEEDED"}

    return start


def http_task(payload: Any) -> Any:
    """The HTTP task (`arn:aws:states:::http:invoke`): ApiEndpoint, Method, Headers,
    QueryParameters, RequestBody in; StatusCode, StatusText, Headers, ResponseBody out."""
    import httpx

    if not isinstance(payload, dict) or not isinstance(payload.get("ApiEndpoint"), str):
        raise StatesError("States.Runtime", "an HTTP task needs Parameters.ApiEndpoint")
    body = payload.get("RequestBody")
    try:
        response = httpx.request(
            str(payload.get("Method", "GET")).upper(),
            payload["ApiEndpoint"],
            headers={str(k): str(v) for k, v in (payload.get("Headers") or {}).items()},
            params=payload.get("QueryParameters") or None,
            json=body if body is not None and not isinstance(body, str) else None,
            content=body if isinstance(body, str) else None,
            timeout=60,
        )
    except httpx.HTTPError as exc:
        raise StatesError("States.Http.Socket", str(exc)) from None
    try:
        parsed: Any = response.json()
    except ValueError:
        parsed = response.text
    result = {
        "StatusCode": response.status_code,
        "StatusText": response.reason_phrase,
        "Headers": dict(response.headers),
        "ResponseBody": parsed,
    }
    if response.status_code >= 300:
        raise StatesError(f"States.Http.StatusCode.{response.status_code}", json.dumps(result))
    return result


def _resolve(
    resource: str, payload: Any, handlers: dict[str, Handler]
) -> tuple[Handler, Any, bool]:
    """A handler for a resource: the exact string, else the function name at the ARN's end."""
    wrap = False
    if resource == HTTP_RESOURCE and resource not in handlers:
        return http_task, payload, False
    if (
        resource.startswith("arn:aws:states:::lambda:invoke")
        and isinstance(payload, dict)
        and "FunctionName" in payload
    ):
        resource = str(payload["FunctionName"])
        payload = payload.get("Payload", {})
        wrap = True
    for candidate in (resource, resource.rsplit(":", 1)[-1].removesuffix(".waitForTaskToken")):
        if candidate in handlers:
            return handlers[candidate], payload, wrap
    raise StatesError("States.Runtime", f"no handler for resource {resource!r}")


class Suspended(Exception):
    """A `.waitForTaskToken` task handed out its token; the execution waits for the answer."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.token = token


def _task(
    name: str, state: dict[str, Any], effective: Any, context: dict[str, Any], runtime: Runtime
) -> Any:
    callback = state["Resource"].endswith(".waitForTaskToken")
    if callback:
        runtime.callbacks += 1
        token = runtime.token_for(runtime.callbacks) if runtime.token_for else str(uuid.uuid4())
        context["Task"] = {"Token": token}
    payload = build(state["Parameters"], effective, context) if "Parameters" in state else effective
    if state["Resource"].startswith(NESTED):
        handler, wrap = _nested(state["Resource"], runtime), False
    else:
        handler, payload, wrap = _resolve(state["Resource"], payload, runtime.handlers)
    runtime.event(
        "TaskScheduled",
        taskScheduledEventDetails={
            "resource": state["Resource"],
            "parameters": json.dumps(payload),
        },
    )
    runtime.event("TaskStarted", taskStartedEventDetails={"resource": state["Resource"]})
    timeout = state.get("TimeoutSeconds")
    if "TimeoutSecondsPath" in state:
        timeout = paths.read(effective, state["TimeoutSecondsPath"], context)
    earlier = runtime.recorded()
    if earlier is not None:
        if callback and runtime.token_for is not None:
            # Replaying keeps the stored history's shape: the token went out before the answer.
            runtime.event(
                "TaskSubmitted", taskSubmittedEventDetails={"output": json.dumps(payload)}
            )
        return _replayed(earlier, runtime, wrap)
    if callback and runtime.token_for is not None:
        _deliver_token(handler, payload, runtime)
        raise Suspended(str(context["Task"]["Token"]))
    future = _POOL.submit(handler, payload)
    try:
        result = future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        runtime.event("TaskTimedOut", taskTimedOutEventDetails={"error": "States.Timeout"})
        raise StatesError(
            "States.Timeout", f"Task '{name}' timed out after {timeout} seconds"
        ) from None
    except Exception as exc:
        error, cause = _describe(exc)
        runtime.event("TaskFailed", taskFailedEventDetails={"error": error, "cause": cause})
        raise StatesError(error, cause) from None
    runtime.event("TaskSucceeded", taskSucceededEventDetails={"output": json.dumps(result)})
    return {"Payload": result, "StatusCode": 200} if wrap else result


def _deliver_token(handler: Handler, payload: Any, runtime: Runtime) -> None:
    """Call the handler with the token-bearing input; the answer comes later, by token."""
    try:
        handler(payload)
    except Exception as exc:
        error, cause = _describe(exc)
        runtime.event("TaskFailed", taskFailedEventDetails={"error": error, "cause": cause})
        raise StatesError(error, cause) from None
    runtime.event("TaskSubmitted", taskSubmittedEventDetails={"output": json.dumps(payload)})


def _replayed(outcome: tuple[str, Any], runtime: Runtime, wrap: bool) -> Any:
    """A task that finished before a crash is not run again: its recorded outcome stands."""
    kind, value = outcome
    if kind == "succeeded":
        runtime.event("TaskSucceeded", taskSucceededEventDetails={"output": json.dumps(value)})
        return {"Payload": value, "StatusCode": 200} if wrap else value
    error, cause = value
    runtime.event("TaskFailed", taskFailedEventDetails={"error": error, "cause": cause})
    raise StatesError(error, cause)


def wait_starts(history: list[dict[str, Any]]) -> list[datetime]:
    """When each Wait state of a stored history was entered, in order."""
    return [
        datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
        for event in history
        if event["type"] == "WaitStateEntered"
    ]


def outcomes(history: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """Task outcomes in the order they happened, from a stored history."""
    found: list[tuple[str, Any]] = []
    for event in history:
        if event["type"] == "TaskSucceeded":
            found.append(("succeeded", json.loads(event["taskSucceededEventDetails"]["output"])))
        elif event["type"] == "TaskFailed":
            details = event["taskFailedEventDetails"]
            found.append(("failed", (details["error"], details["cause"])))
        elif event["type"] == "TaskTimedOut":
            found.append(("failed", ("States.Timeout", "timed out")))
    return found


def _describe(exc: Exception) -> tuple[str, str]:
    """Error and cause as Step Functions reports a Lambda failure (or the handler's own names)."""
    if isinstance(exc, StatesError):
        return exc.error, exc.cause
    error = getattr(exc, "error", None)
    if isinstance(error, str):
        return error, str(getattr(exc, "cause", ""))
    cause = json.dumps(
        {"errorMessage": str(exc), "errorType": type(exc).__name__, "stackTrace": []}
    )
    return type(exc).__name__, cause


def _wait(state: dict[str, Any], data: Any, context: Any, runtime: Runtime) -> None:
    started = runtime.wait_started()
    if "Seconds" in state or "SecondsPath" in state:
        seconds = (
            state["Seconds"]
            if "Seconds" in state
            else paths.read(data, state["SecondsPath"], context)
        )
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise StatesError("States.Runtime", "Wait seconds must be a non-negative number")
        elapsed = 0.0 if started is None else (runtime.now() - started).total_seconds()
        runtime.sleep(max(0.0, float(seconds) - elapsed))
        return
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
    runtime.sleep(max(0.0, (moment - runtime.now()).total_seconds()))


def new_context(name: str | None, data: Any, machine_name: str, runtime: Runtime) -> dict[str, Any]:
    execution = name or str(uuid.uuid4())
    return {
        "Execution": {
            "Id": f"arn:jetbridge:states:execution:{machine_name}:{execution}",
            "Name": execution,
            "Input": data,
            "StartTime": _iso(runtime.now()),
        },
        "StateMachine": {
            "Id": f"arn:jetbridge:states:stateMachine:{machine_name}",
            "Name": machine_name,
        },
    }
