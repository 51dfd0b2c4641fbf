"""Evaluates the built-in alarms continuously and keeps short series of the key figures.

Each evaluation snapshots the metrics (every process's, with PROMETHEUS_MULTIPROC_DIR) and the
figures only the database knows (dead letters). An alarm's state lives in the `alarms` table:
the process whose conditional update changes it publishes the change, in the same transaction,
as an event on the `operations` bus, so any rule and target receives it exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import Connection, insert, select, update

from jetbridge.events.backbone import Backbone
from jetbridge.events.envelope import CloudEvent
from jetbridge.ops import metrics
from jetbridge.ops.alarms import DEFAULT_ALARMS, WINDOW_SECONDS, Alarm, Snapshot, Window, key
from jetbridge.storage.schema import alarms
from jetbridge.storage.transient import Outage

log = logging.getLogger(__name__)
OPERATIONS_BUS = "operations"
SOURCE = "jetbridge.alarms"
EVENT_TYPE = "alarm.state_changed"
OK, ALARM = "OK", "ALARM"
HISTORY_SECONDS = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class Series:
    """A figure charted over time, computed from two consecutive snapshots."""

    name: str
    unit: str
    description: str


SERIES = (
    Series("api_requests_per_second", "1/s", "HTTP requests answered"),
    Series("api_5xx_per_second", "1/s", "HTTP answers with a 5XX status"),
    Series("events_put_per_second", "1/s", "events appended to any bus"),
    Series("events_delivered_per_second", "1/s", "deliveries targets accepted"),
    Series("events_dead_lettered_per_second", "1/s", "deliveries dead-lettered"),
    Series("workflow_failures_per_second", "1/s", "executions failed or timed out"),
    Series("task_errors_per_second", "1/s", "task handler calls that raised"),
    Series("dlq_depth", "letters", "dead letters waiting"),
    Series("capture_lag_seconds", "s", "largest change-capture lag"),
    Series("db_query_p99_seconds", "s", "99th percentile of database statement time"),
    Series("stream_clients", "clients", "live-stream clients connected"),
)


class AlarmMonitor:
    """The built-in alarms of one process, evaluated every `interval` seconds."""

    def __init__(
        self,
        backbone: Backbone,
        *,
        alarms_: Sequence[Alarm] = DEFAULT_ALARMS,
        window: float = WINDOW_SECONDS,
        history: float = HISTORY_SECONDS,
        interval: float = 15.0,
    ) -> None:
        self.backbone = backbone
        self.alarms = tuple(alarms_)
        self.window = window
        self.interval = interval
        self._snapshots: deque[tuple[float, Snapshot]] = deque()
        self._series: dict[str, deque[tuple[float, float]]] = {
            series.name: deque(maxlen=max(2, int(history / interval))) for series in SERIES
        }
        # Changes read per minute, per change-capture source this process captures.
        self._capture: dict[str, deque[tuple[float, float]]] = {}
        self._history_points = max(2, int(history / interval))
        self.last_values: dict[str, float | None] = {}
        self.evaluated_at: float | None = None

    def prepare(self, conn: Connection) -> None:
        """Every alarm has a row (OK until evaluated otherwise)."""
        known = set(conn.execute(select(alarms.c.name)).scalars())
        now = time.time()
        for alarm in self.alarms:
            if alarm.name not in known:
                conn.execute(insert(alarms).values(name=alarm.name, state=OK, changed_at=now))

    def database_figures(self) -> dict[str, dict[str, float]]:
        """Dead letters waiting, per bus."""
        depth = self.backbone.dead_letters.depth()
        return {"jetbridge_dlq_depth": {bus: float(count) for bus, count in depth.items()}}

    def snapshot(self) -> dict[Any, float]:
        taken: dict[Any, float] = {
            key(name, labels): value for name, labels, value in metrics.samples("jetbridge_")
        }
        for name, values in self.database_figures().items():
            for bus, value in values.items():
                taken[key(name, {"bus": bus})] = value
        return taken

    def baseline(self) -> None:
        """Start the windows now: what the process counted before does not alarm."""
        self._snapshots.append((time.time(), self.snapshot()))

    def evaluate(self) -> list[dict[str, Any]]:
        """Evaluate every alarm once; the state changes this process made, as published."""
        now = time.time()
        current = self.snapshot()
        previous = self._snapshots[-1] if self._snapshots else (now, current)
        self._snapshots.append((now, current))
        while len(self._snapshots) > 2 and self._snapshots[1][0] <= now - self.window:
            self._snapshots.popleft()
        window = Window(current, self._snapshots[0][1])
        with self.backbone.reading() as conn:
            stored = {row.name: row.state for row in conn.execute(select(alarms))}
        changes = []
        for alarm in self.alarms:
            firing, value = alarm.evaluate(window)
            self.last_values[alarm.name] = value
            state = ALARM if firing else OK
            if stored.get(alarm.name, state) == state:
                continue  # unchanged: no write, so no lock on SQLite
            change = self._settle(alarm, state, value, now)
            if change is not None:
                changes.append(change)
        self._chart(now, Window(current, previous[1]), max(now - previous[0], 1e-9))
        self.evaluated_at = now
        return changes

    def _settle(
        self, alarm: Alarm, state: str, value: float | None, now: float
    ) -> dict[str, Any] | None:
        with self.backbone.transaction() as conn:
            row = conn.execute(select(alarms).where(alarms.c.name == alarm.name)).first()
            if row is None or row.state == state:
                return None
            reason = _reason(alarm, state, value)
            changed = conn.execute(
                update(alarms)
                .where(alarms.c.name == alarm.name, alarms.c.state == row.state)
                .values(state=state, value=value, reason=reason, changed_at=now)
            )
            if changed.rowcount != 1:
                return None  # another process changed it first and published the change
            detail = {
                "alarmName": alarm.name,
                "description": alarm.description,
                "state": {"value": state, "reason": reason, "timestamp": now},
                "previousState": {"value": row.state, "timestamp": row.changed_at},
                "configuration": {"threshold": alarm.threshold, "unit": alarm.unit},
                "value": value,
            }
            event = CloudEvent(
                id=str(uuid.uuid4()),
                source=SOURCE,
                type=EVENT_TYPE,
                subject=alarm.name,
                data=detail,
            )
            self.backbone.publish(conn, bus=OPERATIONS_BUS, events=[event])
        log.warning("alarm %s is %s: %s", alarm.name, state, reason)
        return detail

    def _chart(self, now: float, step: Window, seconds: float) -> None:
        def rate(name: str, where: Any = None) -> float:
            return step.delta(name, where) / seconds

        figures = {
            "api_requests_per_second": rate("jetbridge_api_requests_total"),
            "api_5xx_per_second": rate(
                "jetbridge_api_requests_total", lambda labels: labels["status"].startswith("5")
            ),
            "events_put_per_second": rate("jetbridge_events_put_total"),
            "events_delivered_per_second": rate("jetbridge_events_delivered_total"),
            "events_dead_lettered_per_second": rate("jetbridge_events_dead_lettered_total"),
            "workflow_failures_per_second": rate(
                "jetbridge_workflow_executions_ended_total",
                lambda labels: labels["status"] in {"FAILED", "TIMED_OUT"},
            ),
            "task_errors_per_second": rate("jetbridge_task_errors_total"),
            "dlq_depth": sum(step.gauge("jetbridge_dlq_depth")),
            "capture_lag_seconds": max(step.gauge("jetbridge_capture_lag_seconds"), default=0.0),
            "db_query_p99_seconds": step.quantile("jetbridge_db_query_seconds", 0.99) or 0.0,
            "stream_clients": sum(step.gauge("jetbridge_stream_clients")),
        }
        for name, value in figures.items():
            self._series[name].append((now, value))
        for source in sorted(_labels_of(step.now, CAPTURED, "source")):
            changes = step.delta(CAPTURED, partial(_from_source, source))
            points = self._capture.setdefault(source, deque(maxlen=self._history_points))
            points.append((now, changes * 60 / seconds))

    def capture_rates(self, *, since: float) -> dict[str, list[tuple[float, float]]]:
        """Changes per minute read from each source this process captures, since `since`."""
        return {
            source: [point for point in points if point[0] >= since]
            for source, points in self._capture.items()
        }

    def series(self, name: str, *, since: float) -> list[tuple[float, float]]:
        return [point for point in self._series[name] if point[0] >= since]

    def states(self) -> list[dict[str, Any]]:
        """Every alarm with its state, and the value this process measured last."""
        with self.backbone.reading() as conn:
            rows = {row.name: row for row in conn.execute(select(alarms))}
        found = []
        for alarm in self.alarms:
            row = rows.get(alarm.name)
            found.append(
                {
                    "name": alarm.name,
                    "description": alarm.description,
                    "threshold": alarm.threshold,
                    "unit": alarm.unit,
                    "state": row.state if row is not None else OK,
                    "reason": row.reason if row is not None else "",
                    "changed_at": row.changed_at if row is not None else None,
                    "value": self.last_values.get(alarm.name),
                    "evaluated_at": self.evaluated_at,
                }
            )
        return found

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await asyncio.to_thread(self.baseline)
        except Exception:
            log.exception("reading the first metrics snapshot failed; the windows start later")
        outage = Outage("evaluating the alarms", log)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            if stop.is_set():
                return
            try:
                await asyncio.to_thread(self.evaluate)
                outage.succeeded()
            except Exception as exc:
                outage.failed(exc)


CAPTURED = "jetbridge_capture_changes_total"


def _from_source(source: str, labels: dict[str, str]) -> bool:
    return labels.get("source") == source


def _labels_of(snapshot: Snapshot, name: str, label: str) -> set[str]:
    return {dict(labels)[label] for sample, labels in snapshot if sample == name}


def _reason(alarm: Alarm, state: str, value: float | None) -> str:
    shown = "no data" if value is None else f"{value:.4g} {alarm.unit}"
    comparison = "above" if state == ALARM else "not above"
    return f"{alarm.description}: {shown}, {comparison} the threshold {alarm.threshold:g}"
