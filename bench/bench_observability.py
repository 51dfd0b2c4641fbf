"""What metrics and tracing cost: per call, and on publishing events (embedded default, SQLite).

Baselines in the same run: an empty Python function call (for the per-call costs) and a bare
SQLite insert and commit of the same event bodies (for publishing). Tracing is measured first
with no tracer provider (the default: nothing is exported) and then with the OpenTelemetry SDK
recording every span into memory (as with an exporter configured and every trace sampled).

    python bench/bench_observability.py [--calls 200000] [--events 5000]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jetbridge.app import build_platform
from jetbridge.config import Settings
from jetbridge.events.envelope import CloudEvent
from jetbridge.ops import metrics, tracing

BATCH = 100


def per_call(fn: Callable[[], object], calls: int) -> float:
    """Nanoseconds per call."""
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e9


def empty() -> None:
    return None


def counter() -> None:
    metrics.EVENTS_DELIVERED.labels("default", "rule", "target").inc()


def histogram() -> None:
    metrics.DELIVERY_LATENCY.labels("default").observe(0.002)


def span() -> None:
    with tracing.span("deliver rule/target", attributes={"jetbridge.rule": "rule"}):
        pass


def events(n: int) -> list[CloudEvent]:
    return [CloudEvent(source="bench", type="x", data={"n": i}) for i in range(n)]


def publish_rate(directory: Path, name: str, count: int) -> float:
    """Events per second published in batches of 100, each batch one transaction."""
    platform = build_platform(
        Settings(
            database_url=f"sqlite:///{directory / name}.db", data_dir=directory, run_workers=False
        )
    )
    platform.prepare()
    started = time.perf_counter()
    for _ in range(count // BATCH):
        with platform.backbone.transaction() as conn:
            platform.backbone.publish(conn, bus="default", events=events(BATCH))
    rate = count / (time.perf_counter() - started)
    platform.engine.dispose()
    return rate


def baseline_rate(directory: Path, count: int) -> float:
    db = sqlite3.connect(directory / "baseline.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE log (seq INTEGER PRIMARY KEY, body TEXT)")
    started = time.perf_counter()
    for _ in range(count // BATCH):
        bodies = [(e.to_json(),) for e in events(BATCH)]
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO log (body) VALUES (?)", bodies)
        db.execute("COMMIT")
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        base_call = per_call(empty, args.calls)
        costs = {
            "counter.labels(...).inc()": per_call(counter, args.calls),
            "histogram.labels(...).observe()": per_call(histogram, args.calls),
            "span, no tracer provider": per_call(span, args.calls),
        }
        base_publish = baseline_rate(directory, args.events)
        untraced = publish_rate(directory, "untraced", args.events)
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        trace.set_tracer_provider(provider)
        costs["span, SDK recording every span"] = per_call(span, args.calls // 10)
        traced = publish_rate(directory, "traced", args.events)

    print("| operation | ns per call | empty call baseline ns | ratio |")
    print("|---|---|---|---|")
    for name, cost in costs.items():
        print(f"| {name} | {cost:,.0f} | {base_call:,.0f} | {cost / base_call:.1f}x |")
    print()
    print(
        "| publishing (batches of 100, SQLite) | events/s | bare insert baseline events/s | ratio |"
    )
    print("|---|---|---|---|")
    for name, rate in (
        ("metrics, no tracer provider", untraced),
        ("metrics and SDK tracing", traced),
    ):
        print(f"| {name} | {rate:,.0f} | {base_publish:,.0f} | {base_publish / rate:.1f}x slower |")


if __name__ == "__main__":
    main()
