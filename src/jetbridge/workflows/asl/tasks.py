"""Task states: finding the handler of a resource, calling it within TimeoutSeconds and
HeartbeatSeconds, callbacks (`.waitForTaskToken`), HTTP tasks (their handler is in
`jetbridge.workflows.http_task`) and nested state machines."""

from __future__ import annotations

import concurrent.futures
import contextvars
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from jetbridge.workflows.asl import paths
from jetbridge.workflows.asl.errors import StatesError
from jetbridge.workflows.asl.resources import HTTP_RESOURCE, LAMBDA_INVOKE, NESTED, handler_names
from jetbridge.workflows.asl.scope import (
    Answer,
    Handler,
    HistoryDiverged,
    IterationAborted,
    Runtime,
    Scope,
    Suspended,
    iso,
    key_text,
)

# Step Functions' ceiling for TimeoutSeconds, and what a callback task waits when it has none.
MAX_SECONDS = 99_999_999
OUTCOMES = {"TaskSucceeded", "TaskFailed", "TaskTimedOut"}
_BEAT: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "asl_heartbeat", default=None
)

# Runs a nested machine: definition, input, execution name, machine name, the parent's runtime.
RunChild = Callable[[dict[str, Any], Any, str, str, Runtime], Any]
Build = Callable[[Any, Any, Any], Any]


def heartbeat() -> None:
    """Called from a task handler: it is still working (resets the task's HeartbeatSeconds)."""
    beat = _BEAT.get()
    if beat is not None:
        beat()


def run_task(
    name: str,
    state: dict[str, Any],
    effective: Any,
    context: dict[str, Any],
    scope: Scope,
    build: Build,
    run_child: RunChild,
) -> Any:
    runtime = scope.runtime
    resource = state["Resource"]
    callback = resource.endswith(".waitForTaskToken")
    timeout, beat = limits(name, state, effective, context)
    if callback and runtime.tokens is not None and timeout is None:
        timeout = MAX_SECONDS
    token = ""
    if callback:
        # The token names the task's place in the execution: a resumed run hands out the same.
        key = key_text(scope.next_key())
        if runtime.redrive_count:
            # A redriven task waits for a token of its own: a key has an odd number of parts
            # (a line's path is pairs), so one more part cannot be another task's key.
            key = f"{key}.{runtime.redrive_count}"
        token = runtime.tokens.token_for(key) if runtime.tokens else str(uuid.uuid4())
        context["Task"] = {"Token": token}
    payload = build(state["Parameters"], effective, context) if "Parameters" in state else effective
    if resource.startswith(NESTED):
        handler, wrap = _nested(resource, runtime, run_child), False
    else:
        handler, payload, wrap = _resolve(resource, payload, runtime.handlers)
    scheduled: dict[str, Any] = {"resource": resource, "parameters": json.dumps(payload)}
    for field, value in (("timeoutInSeconds", timeout), ("heartbeatInSeconds", beat)):
        if value is not None:
            scheduled[field] = value
    scope.event("TaskScheduled", taskScheduledEventDetails=scheduled)
    scope.event("TaskStarted", taskStartedEventDetails={"resource": resource})
    if callback and runtime.tokens is not None:
        assert timeout is not None
        output = _callback(name, resource, token, payload, handler, scope, timeout, beat)
    else:
        output = _call(resource, handler, payload, scope, timeout, beat)
    # A callback's result is the output sent with SendTaskSuccess, not the invocation's response.
    return {"Payload": output, "StatusCode": 200} if wrap and not callback else output


def _call(
    resource: str,
    handler: Handler,
    payload: Any,
    scope: Scope,
    timeout: int | None,
    beat: int | None,
) -> Any:
    scope.checkpoint()
    recorded = scope.peek()
    if recorded is not None:
        return _replayed(recorded, scope)
    try:
        result = call_handler(handler, payload, timeout=timeout, heartbeat=beat)
    except StatesError as error:
        _failed(scope, resource, error)
        raise
    scope.event(
        "TaskSucceeded",
        taskSucceededEventDetails={"resource": resource, "output": json.dumps(result)},
    )
    return result


def limits(
    name: str, state: dict[str, Any], effective: Any, context: Any
) -> tuple[int | None, int | None]:
    """TimeoutSeconds and HeartbeatSeconds, their Path forms read from the state's input."""
    found: list[int | None] = []
    for field in ("TimeoutSeconds", "HeartbeatSeconds"):
        value = state.get(field)
        if f"{field}Path" in state:
            value = paths.read(effective, state[f"{field}Path"], context)
            if not _positive_integer(value):
                raise StatesError(
                    "States.Runtime",
                    f"State '{name}': {field}Path '{state[f'{field}Path']}' selected "
                    f"{json.dumps(value)}; expected a positive integer up to {MAX_SECONDS}",
                )
        found.append(value)
    return found[0], found[1]


def _positive_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_SECONDS


class _Clock:
    """The last sign of life of a running handler."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def beat(self) -> None:
        self.last = time.monotonic()


def call_handler(
    handler: Handler, payload: Any, *, timeout: int | None, heartbeat: int | None
) -> Any:
    """Run a handler; past TimeoutSeconds, or HeartbeatSeconds without `heartbeat()`, the task
    fails (the handler itself cannot be interrupted and finishes unobserved)."""
    clock = _Clock()

    def run() -> Any:
        _BEAT.set(clock.beat)
        return handler(payload)

    if timeout is None and heartbeat is None:
        return _result(lambda: contextvars.copy_context().run(run))
    started = time.monotonic()
    future = _in_thread(run)
    while True:
        ends = [started + timeout] if timeout is not None else []
        if heartbeat is not None:
            ends.append(clock.last + heartbeat)
        done, _ = concurrent.futures.wait([future], timeout=max(0.0, min(ends) - time.monotonic()))
        if done:
            return _result(future.result)
        now = time.monotonic()
        if timeout is not None and now >= started + timeout:
            raise StatesError("States.Timeout", f"the task timed out after {timeout} seconds")
        if heartbeat is not None and now >= clock.last + heartbeat:
            raise StatesError(
                "States.HeartbeatTimeout", f"the task sent no heartbeat for {heartbeat} seconds"
            )


def _in_thread(run: Callable[[], Any]) -> concurrent.futures.Future[Any]:
    """Run a handler in a thread of its own: past its deadline nobody waits for it, and an
    abandoned handler neither holds a pool's place nor keeps the process from exiting."""
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    context = contextvars.copy_context()

    def target() -> None:
        try:
            future.set_result(context.run(run))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=target, name="asl-task", daemon=True).start()
    return future


def _result(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except StatesError:
        raise
    except Exception as exc:
        raise StatesError(*describe(exc)) from None


def _callback(
    name: str,
    resource: str,
    token: str,
    payload: Any,
    handler: Handler,
    scope: Scope,
    timeout: int,
    beat: int | None,
) -> Any:
    """Hand the token out once, then wait for its answer: resumed runs only look again."""
    tokens = scope.runtime.tokens
    assert tokens is not None
    scope.checkpoint()
    upcoming = scope.peek()
    if upcoming is not None and upcoming["type"] != "TaskSubmitted":
        return _replayed(upcoming, scope)  # handing the token out failed
    if upcoming is None:
        tokens.issue(token, state=name, timeout=timeout, heartbeat=beat)
        try:
            _result(lambda: handler(payload))
        except StatesError as error:
            tokens.cancel(token)
            _failed(scope, resource, error)
            raise
    scope.event(
        "TaskSubmitted",
        taskSubmittedEventDetails={"resource": resource, "output": json.dumps(payload)},
    )
    return _answer(resource, token, scope)


def _answer(resource: str, token: str, scope: Scope) -> Any:
    """The outcome of a handed-out token: recorded, answered, timed out, or still awaited."""
    tokens = scope.runtime.tokens
    assert tokens is not None
    try:
        scope.checkpoint()
    except IterationAborted:
        tokens.cancel(token)
        raise
    recorded = scope.peek()
    if recorded is not None:
        return _replayed(recorded, scope)
    answer = tokens.poll(token)
    if not isinstance(answer, Answer):
        scope.runtime.check_deadline()
        raise Suspended([token], answer)
    if answer.kind == "succeeded":
        scope.event(
            "TaskSucceeded",
            taskSucceededEventDetails={"resource": resource, "output": json.dumps(answer.output)},
        )
        return answer.output
    failure = StatesError(answer.error, answer.cause)
    _failed(scope, resource, failure)
    raise failure


def _failed(scope: Scope, resource: str, error: StatesError) -> None:
    details = {"resource": resource, "error": error.error, "cause": error.cause}
    if error.error in {"States.Timeout", "States.HeartbeatTimeout"}:
        scope.event("TaskTimedOut", taskTimedOutEventDetails=details)
    else:
        scope.event("TaskFailed", taskFailedEventDetails=details)


def _replayed(recorded: dict[str, Any], scope: Scope) -> Any:
    """A task that finished before the execution resumed is not run again: its outcome stands."""
    kind = recorded["type"]
    if kind not in OUTCOMES:
        raise HistoryDiverged(f"event {recorded['id']} is {kind}, not a task's outcome")
    scope.event(kind)
    if kind == "TaskSucceeded":
        return json.loads(recorded["taskSucceededEventDetails"]["output"])
    details = recorded.get("taskFailedEventDetails") or recorded.get("taskTimedOutEventDetails")
    details = details or {}
    default = "States.Timeout" if kind == "TaskTimedOut" else "States.TaskFailed"
    raise StatesError(str(details.get("error", default)), str(details.get("cause", "")))


def _nested(resource: str, runtime: Runtime, run_child: RunChild) -> Handler:
    """Start another state machine (registered by name) and, with `.sync`, wait for its end."""

    def start(payload: Any) -> Any:
        if not isinstance(payload, dict) or not isinstance(payload.get("StateMachineArn"), str):
            raise StatesError("States.Runtime", "startExecution needs Parameters.StateMachineArn")
        machine_name = payload["StateMachineArn"].rsplit(":", 1)[-1]
        machine = runtime.machines.get(machine_name)
        if machine is None:
            raise StatesError("StateMachineDoesNotExist", f"no state machine {machine_name!r}")
        execution = str(payload.get("Name") or uuid.uuid4())
        data = payload.get("Input", {})
        arn = f"arn:jetbridge:states:execution:{machine_name}:{execution}"
        if not resource.endswith((".sync", ".sync:2")):
            run_child(machine, data, execution, machine_name, runtime)
            return {"ExecutionArn": arn, "StartDate": iso(runtime.now())}
        try:
            output = run_child(machine, data, execution, machine_name, runtime)
        except StatesError as error:
            raise StatesError(
                "States.TaskFailed", json.dumps({"Error": error.error, "Cause": error.cause})
            ) from None
        shown = output if resource.endswith(":2") else json.dumps(output)
        return {"ExecutionArn": arn, "Output": shown, "Status": "SUCCEEDED"}

    return start


def _resolve(
    resource: str, payload: Any, handlers: dict[str, Handler]
) -> tuple[Handler, Any, bool]:
    """A handler for a resource among the machine's own: the exact string, else the function
    name at the ARN's end."""
    wrap = False
    if resource == HTTP_RESOURCE and resource not in handlers:
        from jetbridge.workflows.http_task import http_task

        return http_task, payload, False
    if (
        resource.startswith(LAMBDA_INVOKE)
        and isinstance(payload, dict)
        and "FunctionName" in payload
    ):
        resource = str(payload["FunctionName"])
        payload = payload.get("Payload", {})
        wrap = True
    for candidate in handler_names(resource):
        if candidate in handlers:
            return handlers[candidate], payload, wrap
    raise StatesError("States.Runtime", f"no handler for resource {resource!r}")


def describe(exc: Exception) -> tuple[str, str]:
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
