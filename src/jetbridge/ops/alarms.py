"""The built-in alarms and how each is measured, over plain snapshots of the metrics.

A snapshot maps (sample name, sorted labels) to a value. Counters and histograms are compared
between now and the oldest snapshot inside the window (five minutes), so an alarm reads "in the
last five minutes"; gauges are read now. No data (nothing called in the window) never alarms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

SampleKey = tuple[str, tuple[tuple[str, str], ...]]
Snapshot = Mapping[SampleKey, float]
WINDOW_SECONDS = 300.0
Where = Callable[[dict[str, str]], bool]


def key(name: str, labels: Mapping[str, str]) -> SampleKey:
    return name, tuple(sorted(labels.items()))


@dataclass(frozen=True, slots=True)
class Window:
    """The snapshot now and the one at the window's start."""

    now: Snapshot
    before: Snapshot

    def gauge(
        self, name: str, where: Callable[[dict[str, str]], bool] | None = None
    ) -> list[float]:
        return [value for labels, value in _select(self.now, name, where)]

    def delta(self, name: str, where: Callable[[dict[str, str]], bool] | None = None) -> float:
        """How much a counter grew in the window (a restarted process counts from zero)."""
        total = 0.0
        for (sample, labels), value in self.now.items():
            if sample != name or (where is not None and not where(dict(labels))):
                continue
            previous = self.before.get((sample, labels), 0.0)
            total += value - previous if value >= previous else value
        return total

    def quantile(self, histogram: str, q: float) -> float | None:
        """The q-quantile of a histogram's observations in the window, interpolated within its
        bucket as Prometheus's histogram_quantile does; None without observations."""
        bucket = f"{histogram}_bucket"
        bounds = {dict(labels)["le"] for sample, labels in self.now if sample == bucket}
        counts = [(float(bound), self.delta(bucket, _at(bound))) for bound in bounds]
        return histogram_quantile(q, sorted(counts))


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """`buckets`: (upper bound, cumulative count), ascending, the last one +Inf."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the largest finite bucket: its bound is all we know
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def _at(bound: str) -> Where:
    return lambda labels: labels.get("le") == bound


def _select(
    snapshot: Snapshot, name: str, where: Where | None
) -> Iterable[tuple[dict[str, str], float]]:
    for (sample, labels), value in snapshot.items():
        if sample == name and (where is None or where(dict(labels))):
            yield dict(labels), value


def _ratio(part: float, whole: float) -> float | None:
    return None if whole <= 0 else part / whole


def _max(values: list[float]) -> float | None:
    return max(values) if values else None


@dataclass(frozen=True, slots=True)
class Alarm:
    """An alarm fires while `measure` is above `threshold`."""

    name: str
    description: str
    threshold: float
    unit: str
    measure: Callable[[Window], float | None]

    def evaluate(self, window: Window) -> tuple[bool, float | None]:
        value = self.measure(window)
        return value is not None and value > self.threshold, value


def _five_xx(labels: dict[str, str]) -> bool:
    return labels.get("status", "").startswith("5")


def _failed(labels: dict[str, str]) -> bool:
    return labels.get("status") in {"FAILED", "TIMED_OUT"}


DEFAULT_ALARMS = (
    Alarm(
        "task-handler-errors",
        "task handler calls that raised, over five minutes",
        0.01,
        "ratio",
        lambda w: _ratio(
            w.delta("jetbridge_task_errors_total"), w.delta("jetbridge_task_seconds_count")
        ),
    ),
    Alarm(
        "api-5xx",
        "API answers with a 5XX status, over five minutes",
        0.005,
        "ratio",
        lambda w: _ratio(
            w.delta("jetbridge_api_requests_total", _five_xx),
            w.delta("jetbridge_api_requests_total"),
        ),
    ),
    Alarm(
        "database-latency-p99",
        "99th percentile of database statement time, over five minutes",
        0.5,
        "seconds",
        lambda w: w.quantile("jetbridge_db_query_seconds", 0.99),
    ),
    Alarm(
        "payment-latency",
        "99th percentile of payment provider call time, over five minutes",
        5.0,
        "seconds",
        lambda w: w.quantile("jetbridge_payment_seconds", 0.99),
    ),
    Alarm(
        "dlq-depth",
        "dead letters waiting to be redriven or discarded",
        0.0,
        "letters",
        lambda w: sum(w.gauge("jetbridge_dlq_depth")),
    ),
    Alarm(
        "capture-lag",
        "age of the newest change a legacy database change source delivered",
        30.0,
        "seconds",
        lambda w: _max(w.gauge("jetbridge_capture_lag_seconds")),
    ),
    Alarm(
        "workflow-failures",
        "workflow executions that failed or timed out, over five minutes",
        0.0,
        "executions",
        lambda w: w.delta("jetbridge_workflow_executions_ended_total", _failed),
    ),
)
