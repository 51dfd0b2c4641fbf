"""The platform's Prometheus metrics, and their exposition.

The metrics are module-level, as prometheus-client intends: every part of the process counts
into them, and `/metrics` renders them. When several processes serve one deployment, set
PROMETHEUS_MULTIPROC_DIR (an empty directory, the same for every process, before they start):
each process then writes its values there and any process's `/metrics` shows them all.
Figures read from the database (dead letters, alarms) are added at each scrape.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "exposition"]

# Seconds; wide enough for a slow payment provider and for a long workflow.
LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LONG = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 86400.0)

API_REQUESTS = Counter(
    "jetbridge_api_requests",
    "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"],
)
API_LATENCY = Histogram(
    "jetbridge_api_request_seconds",
    "Time to answer an HTTP request (to the end of the body; streams count their whole life)",
    ["route", "method"],
    buckets=LATENCY,
)
EVENTS_PUT = Counter("jetbridge_events_put", "Events appended to a bus's log", ["bus"])
EVENTS_MATCHED = Counter(
    "jetbridge_events_matched", "Deliveries enqueued: an event matched a rule's target",
    ["bus", "rule", "target"],
)  # fmt: skip
EVENTS_DELIVERED = Counter(
    "jetbridge_events_delivered", "Deliveries a target accepted", ["bus", "rule", "target"]
)
EVENTS_RETRIED = Counter(
    "jetbridge_events_retried", "Failed deliveries scheduled again", ["bus", "rule", "target"]
)
EVENTS_DEAD_LETTERED = Counter(
    "jetbridge_events_dead_lettered",
    "Deliveries given up and kept in the dead-letter queue",
    ["bus", "rule", "target"],
)
EVENTS_DROPPED = Counter(
    "jetbridge_events_dropped",
    "Deliveries given up without a dead-letter queue, or whose target is gone",
    ["bus", "rule", "target"],
)
DELIVERY_LATENCY = Histogram(
    "jetbridge_delivery_seconds",
    "From an event's publication to its delivery to a target",
    ["bus"],
    buckets=LATENCY,
)
EXECUTIONS_STARTED = Counter(
    "jetbridge_workflow_executions_started", "Workflow executions started", ["machine"]
)
EXECUTIONS_ENDED = Counter(
    "jetbridge_workflow_executions_ended",
    "Workflow executions ended, by status (SUCCEEDED, FAILED, TIMED_OUT, ABORTED)",
    ["machine", "status"],
)
EXECUTION_DURATION = Histogram(
    "jetbridge_workflow_execution_seconds",
    "From an execution's start to its end",
    ["machine", "status"],
    buckets=LONG,
)
TRANSITIONS = Counter(
    "jetbridge_workflow_transitions", "States entered by workflow executions", ["machine"]
)
TASK_DURATION = Histogram(
    "jetbridge_task_seconds", "Task handler run time", ["handler"], buckets=LATENCY
)
TASK_ERRORS = Counter(
    "jetbridge_task_errors", "Task handler calls that raised, by error name", ["handler", "error"]
)
DB_QUERY = Histogram(
    "jetbridge_db_query_seconds",
    "Database statement time, by kind (select, insert, update, delete, other)",
    ["kind"],
    buckets=LATENCY,
)
DB_POOL_IN_USE = Gauge(
    "jetbridge_db_connections_in_use",
    "Database connections checked out of the pool",
    multiprocess_mode="livesum",
)
CACHE = Counter(
    "jetbridge_cache_lookups", "Cache lookups, by cache and result", ["cache", "result"]
)
CAPTURE_LAG = Gauge(
    "jetbridge_capture_lag_seconds",
    "Age of the newest change in the last batch a change source delivered (0 when caught up)",
    ["source"],
    multiprocess_mode="livemax",
)
CAPTURE_CHANGES = Counter(
    "jetbridge_capture_changes", "Changes read from a legacy database, per source", ["source"]
)
INGEST = Counter(
    "jetbridge_ingest_messages",
    "Feed messages by outcome: accepted, warned (applied with a warning) or refused",
    ["feed", "outcome"],
)
STREAM_CLIENTS = Gauge(
    "jetbridge_stream_clients",
    "Clients connected to live streams (sse) and MQTT broker connections (mqtt)",
    ["channel"],
    multiprocess_mode="livesum",
)
STREAM_FRAMES = Counter(
    "jetbridge_stream_frames", "Frames sent to live-stream clients or published to MQTT",
    ["channel"],
)  # fmt: skip
PAYMENT_LATENCY = Histogram(
    "jetbridge_payment_seconds",
    "Payment provider calls, by operation and outcome",
    ["operation", "outcome"],
    buckets=LATENCY,
)


@contextmanager
def timed(observe: Callable[[float], None]) -> Iterator[None]:
    """Observe how long the block took, whether it raised or not."""
    started = time.perf_counter()
    try:
        yield
    finally:
        observe(time.perf_counter() - started)


STATEMENT_KINDS = ("select", "insert", "update", "delete", "other")


def statement_kind(statement: str) -> str:
    """The first keyword of an SQL statement, as a label of few values."""
    word = statement.lstrip()[:6].lower()
    return word if word in STATEMENT_KINDS else "other"


class ScrapeFigures(Collector):
    """Figures read at each scrape from a callable answering {(name, help): {labels: value}}."""

    def __init__(self, read: Callable[[], dict[tuple[str, str, str], dict[str, float]]]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        for (name, help_text, label), values in self._read().items():
            family = GaugeMetricFamily(name, help_text, labels=[label] if label else [])
            for key, value in sorted(values.items()):
                family.add_metric([key] if label else [], value)
            yield family


def registry() -> CollectorRegistry:
    """The process's metrics, or every process's when PROMETHEUS_MULTIPROC_DIR is set."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return merged
    return REGISTRY


def exposition(extra: ScrapeFigures | None = None) -> bytes:
    """The text a Prometheus server scrapes."""
    body = generate_latest(registry())
    if extra is not None:
        scraped = CollectorRegistry(auto_describe=False)
        scraped.register(extra)
        body += generate_latest(scraped)
    return body


def sample_value(name: str, labels: dict[str, str] | None = None) -> float:
    """The sum of a sample's values over every series whose labels include `labels`."""
    total = 0.0
    wanted = labels or {}
    for metric in registry().collect():
        for sample in metric.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in wanted.items()):
                total += sample.value
    return total


def samples(prefix: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample whose name starts with `prefix`, for alarms and series."""
    found: list[tuple[str, dict[str, str], float]] = []
    for metric in registry().collect():
        found.extend(
            (sample.name, dict(sample.labels), sample.value)
            for sample in metric.samples
            if sample.name.startswith(prefix)
        )
    return found


def observe_database(engine: Any) -> None:
    """Time every statement and count pooled connections in use on `engine`."""
    from sqlalchemy import event

    # The labelled histograms looked up once, not at every statement.
    timing = {kind: DB_QUERY.labels(kind) for kind in STATEMENT_KINDS}

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        conn.info.setdefault("jetbridge_started", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        started = conn.info.get("jetbridge_started")
        if started:
            timing[statement_kind(statement)].observe(time.perf_counter() - started.pop())

    @event.listens_for(engine, "handle_error")
    def _error(context: Any) -> None:
        conn = context.connection
        started = conn.info.get("jetbridge_started") if conn is not None else None
        if started:
            timing[statement_kind(context.statement or "")].observe(
                time.perf_counter() - started.pop()
            )

    @event.listens_for(engine, "checkout")
    def _checkout(*_: Any) -> None:
        DB_POOL_IN_USE.inc()

    @event.listens_for(engine, "checkin")
    def _checkin(*_: Any) -> None:
        DB_POOL_IN_USE.dec()
