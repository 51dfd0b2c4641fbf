"""Put-to-handler latency and delivery throughput on the embedded default (SQLite, one process).

Baseline in the same run: the floor for any durable hand-off on this disk, one SQLite insert and
commit followed by a read of that row from a second connection.

    python bench/bench_delivery.py [--events 2000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from jetbridge.app import build_platform
from jetbridge.config import Settings
from jetbridge.events import registry
from jetbridge.events.specs import RuleSpec

RECEIVED: dict[str, float] = {}
_lock = threading.Lock()
# The latency run's wait for the event it published: set by the handler after it took its
# time, so the run waits without waking every fraction of a millisecond to look.
ARRIVED: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = {}


def _arrived(event_id: str) -> None:
    waiting = ARRIVED.pop(event_id, None)
    if waiting is not None:
        loop, future = waiting
        loop.call_soon_threadsafe(lambda: future.done() or future.set_result(None))


def on_event(payload: Any) -> None:
    with _lock:
        RECEIVED[payload["id"]] = time.perf_counter()
    _arrived(payload["id"])


async def on_event_async(payload: Any) -> None:
    RECEIVED[payload["id"]] = time.perf_counter()
    _arrived(payload["id"])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def baseline(directory: Path, count: int) -> list[float]:
    path = directory / "baseline.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA synchronous=NORMAL")
    writer.execute("CREATE TABLE q (id INTEGER PRIMARY KEY, body TEXT)")
    reader = sqlite3.connect(path, isolation_level=None)
    samples = []
    for n in range(count):
        start = time.perf_counter()
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO q (id, body) VALUES (?, ?)", (n, '{"x": 1}'))
        writer.execute("COMMIT")
        reader.execute("SELECT body FROM q WHERE id = ?", (n,)).fetchone()
        samples.append(time.perf_counter() - start)
    return samples


def event(n: int) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"bench-{n}",
        "source": "bench.flights",
        "type": "flight.gate_changed",
        "partitionkey": f"BA{n % 50:04d}",
        "data": {"flight": f"BA{n % 50:04d}", "gate": "A12"},
    }


async def latency_run(platform: Any, count: int) -> list[float]:
    samples = []
    loop = asyncio.get_running_loop()
    for n in range(count):
        arrived = loop.create_future()
        ARRIVED[f"bench-{n}"] = (loop, arrived)
        start = time.perf_counter()
        await asyncio.to_thread(platform.backbone.put_events, bus="default", entries=[event(n)])
        await asyncio.wait_for(arrived, timeout=30)
        samples.append(RECEIVED[f"bench-{n}"] - start)
    return samples


async def throughput_run(platform: Any, count: int, offset: int) -> float:
    start = time.perf_counter()
    for first in range(offset, offset + count, 100):
        batch = [event(n) for n in range(first, min(first + 100, offset + count))]
        await asyncio.to_thread(platform.backbone.put_events, bus="default", entries=batch)
    while sum(1 for n in range(offset, offset + count) if f"bench-{n}" in RECEIVED) < count:
        await asyncio.sleep(0.01)
    return count / (time.perf_counter() - start)


async def run(events: int, handler: str) -> dict[str, Any]:
    RECEIVED.clear()
    directory = Path(tempfile.mkdtemp(prefix="jetbridge-bench-"))
    settings = Settings(
        database_url=f"sqlite:///{directory / 'bench.db'}", delivery_poll_seconds=0.05
    )
    platform = build_platform(
        settings, handlers={"bench.sync": on_event, "bench.async": on_event_async}
    )
    await asyncio.to_thread(platform.prepare)
    spec = RuleSpec.model_validate(
        {
            "name": "bench",
            "event_pattern": {"source": ["bench.flights"]},
            "targets": [{"id": "h", "kind": "python", "handler": handler}],
        }
    )
    with platform.backbone.transaction() as conn:
        registry.put_rule(conn, bus="default", spec=spec, handlers=platform.backbone.handlers)
    await platform.start()
    try:
        latencies = await latency_run(platform, events)
        rate = await throughput_run(platform, events * 2, offset=events)
    finally:
        await platform.stop()
    return {"latencies": latencies, "rate": rate, "baseline": baseline(directory, events)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    count = 200 if args.quick else args.events
    rows = []
    for label, handler in (
        ("sync handler", "bench.sync"),
        ("async handler", "bench.async"),
    ):
        result = asyncio.run(run(count, handler))
        lat, base = result["latencies"], result["baseline"]
        rows.append((label, lat, base, result["rate"]))
    print(f"put-to-handler latency, {count} sequential events; throughput with batches of 100\n")
    print(
        "| handler | p50 ms | p99 ms | mean ms | baseline commit+read p50 ms | p99 ms | p50 ratio | events/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, lat, base, rate in rows:
        p50, p99 = percentile(lat, 0.5) * 1e3, percentile(lat, 0.99) * 1e3
        b50, b99 = percentile(base, 0.5) * 1e3, percentile(base, 0.99) * 1e3
        print(
            f"| {label} | {p50:.2f} | {p99:.2f} | {statistics.mean(lat) * 1e3:.2f} | {b50:.3f} | {b99:.3f} "
            f"| {p50 / b50:.1f}x | {rate:,.0f} |"
        )


if __name__ == "__main__":
    main()
