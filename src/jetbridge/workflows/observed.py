"""What workflow executions report to the platform's metrics: task handler time and errors,
states entered, and executions started and ended."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry.trace import INVALID_SPAN, Span, Status, StatusCode

from jetbridge.ops import metrics, tracing
from jetbridge.workflows.asl.tasks import describe
from jetbridge.workflows.machines import Handler


def timed_handlers(handlers: Mapping[str, Handler]) -> dict[str, Handler]:
    """The same handlers, each timed and its errors counted under its registered name."""
    return {name: _timed(name, handler) for name, handler in handlers.items()}


def _timed(name: str, handler: Handler) -> Handler:
    def run(payload: Any) -> Any:
        started = time.perf_counter()
        with _span(name) as span:
            try:
                return handler(payload)
            except Exception as exc:
                error = describe(exc)[0][:64]
                metrics.TASK_ERRORS.labels(name, error).inc()
                span.set_status(Status(StatusCode.ERROR, error))
                raise
            finally:
                metrics.TASK_DURATION.labels(name).observe(time.perf_counter() - started)

    return run


def _span(name: str) -> AbstractContextManager[Span]:
    """The span of a task's handler; none when no tracer provider is installed (a task is on
    the hot path of an execution, and a span nobody records costs as much as the handler)."""
    if not tracing.recording():
        return nullcontext(INVALID_SPAN)
    return tracing.tracer().start_as_current_span(
        f"task {name}",
        attributes={"jetbridge.handler": name},
        record_exception=False,
        set_status_on_exception=False,
    )


def counting_transitions(
    machine: str, record: Callable[[dict[str, Any]], None]
) -> Callable[[dict[str, Any]], None]:
    """`record` for history events, counting each state entered."""
    counter = metrics.TRANSITIONS.labels(machine)

    def observe(event: dict[str, Any]) -> None:
        if str(event.get("type", "")).endswith("StateEntered"):
            counter.inc()
        record(event)

    return observe


def started(machine: str) -> None:
    metrics.EXECUTIONS_STARTED.labels(machine).inc()


def ended(machine: str, status: str, started_at: float) -> None:
    metrics.EXECUTIONS_ENDED.labels(machine, status).inc()
    metrics.EXECUTION_DURATION.labels(machine, status).observe(max(0.0, time.time() - started_at))


@contextmanager
def run_span(row: Any) -> Iterator[None]:
    """A span for one run of an execution (until it ends or parks), in the trace that started
    it; a failure is the execution's outcome, recorded when it ends, not an error of the run."""
    with tracing.tracer().start_as_current_span(
        f"workflow {row.machine}",
        context=tracing.parent_context(row.traceparent),
        attributes={"jetbridge.execution": row.name, "jetbridge.machine": row.machine},
        record_exception=False,
        set_status_on_exception=False,
    ):
        yield
