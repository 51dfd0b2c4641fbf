"""AODB commit -> FIDS SSE client latency on the embedded default, and SSE fan-out.

A legacy AODB (SQLite) receives gate changes at a fixed rate; SQL change capture (polling every
20 ms) feeds the hub; an SSE client of the departures board notes when each change arrives.
Baseline in the same run: a reader polling the legacy table at the same interval, i.e. the
floor any polling capture has. Fan-out: one update delivered to N concurrent SSE clients.

    python bench/bench_fids_latency.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from jetbridge.aodb.cdc import DEFAULT_MAPPING, SqlChangeCapture, TableMapping
from jetbridge.aodb.simulator import AodbSimulator, Change, plan_day
from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.flights.cdc_runner import CdcRunner
from jetbridge.flights.hub import FlightHub
from jetbridge.storage.db import create_database_engine

POLL = 0.02


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def serve(app: Any, port: int) -> Any:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server


class Listener(threading.Thread):
    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.seen: dict[str, float] = {}
        self.ready = threading.Event()

    def run(self) -> None:
        with httpx.stream("GET", self.url, timeout=None) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    self.ready.set()
                    body = json.loads(line[6:])
                    for row in body if isinstance(body, list) else [body]:
                        if row.get("gate"):
                            self.seen.setdefault(row["gate"], time.perf_counter())


def latency_run(rate: int, count: int, port: int) -> tuple[list[float], list[float]]:
    directory = Path(tempfile.mkdtemp(prefix="jetbridge-fids-"))
    app = create_app(Settings(database_url=f"sqlite:///{directory / 'jb.db'}", run_workers=False))
    legacy = create_database_engine(f"sqlite:///{directory / 'aodb.db'}")
    plan = plan_day(seed=5, day=datetime.now(UTC).date(), rotations=60)
    simulator = AodbSimulator(legacy, plan, speed=1e9)
    simulator.install()
    departures = [m.mvt_id for m in plan.movements if m.departure == "ZRH"]
    server = serve(app, port)
    stop = asyncio.Event()
    runner = CdcRunner(
        SqlChangeCapture(legacy, TableMapping.load(DEFAULT_MAPPING)),
        FlightHub(app.state.platform.backbone),
        interval=POLL,
    )
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_until_complete, args=(runner.run(stop),), daemon=True).start()
    time.sleep(0.5)
    listener = Listener(f"http://127.0.0.1:{port}/api/fids/ZRH/departures/stream")
    listener.start()
    listener.ready.wait(10)
    sent: dict[str, float] = {}
    start = time.perf_counter()
    for n in range(count):
        due = start + n / rate
        time.sleep(max(0.0, due - time.perf_counter()))
        gate = f"G{n:05d}"
        simulator.apply(Change(datetime.now(UTC), departures[n % len(departures)], {"GATE": gate}))
        sent[gate] = time.perf_counter()
    deadline = time.time() + 30
    while len(listener.seen) < count and time.time() < deadline:
        time.sleep(0.05)
    latencies = [listener.seen[g] - t for g, t in sent.items() if g in listener.seen]
    loop.call_soon_threadsafe(stop.set)
    server.should_exit = True
    baseline = poll_baseline(directory / "aodb.db", min(count, 300))
    legacy.dispose()
    return latencies, baseline


def poll_baseline(path: Path, count: int) -> list[float]:
    """Commit a change, and notice it from another connection polling every POLL seconds."""
    writer = sqlite3.connect(path, isolation_level=None)
    reader = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE IF NOT EXISTS probe (n INTEGER PRIMARY KEY)")
    samples = []
    for n in range(count):
        start = time.perf_counter()
        writer.execute("INSERT INTO probe (n) VALUES (?)", (n,))
        offset = (n * 0.0037) % POLL  # the change lands at a random point of the reader's cycle
        time.sleep(offset)
        while reader.execute("SELECT 1 FROM probe WHERE n = ?", (n,)).fetchone() is None:
            time.sleep(POLL)
        samples.append(time.perf_counter() - start)
    return samples


def fanout(clients: int, port: int) -> tuple[float, float, int]:
    directory = Path(tempfile.mkdtemp(prefix="jetbridge-fanout-"))
    app = create_app(Settings(database_url=f"sqlite:///{directory / 'jb.db'}", run_workers=False))
    server = serve(app, port)
    hub = FlightHub(app.state.platform.backbone)
    from jetbridge.flights.merge import Update
    from jetbridge.flights.model import FlightIdentity

    identity = FlightIdentity.create(
        airline="LX",
        flight_number="1",
        origin_date=datetime.now(UTC).date(),
        departure_airport="ZRH",
        arrival_airport="JFK",
    )
    hub.apply_all([Update(identity, "bench", datetime.now(UTC), {"gate": "A1"})])
    arrivals: list[float] = []

    async def client(ready: asyncio.Event, opened: list[int], session: httpx.AsyncClient) -> None:
        async with session.stream(
            "GET", f"http://127.0.0.1:{port}/api/fids/ZRH/departures/stream"
        ) as response:
            async for line in response.aiter_lines():
                if line.startswith("event: snapshot"):
                    opened.append(1)
                if line.startswith("data: ") and '"B2"' in line:
                    arrivals.append(time.perf_counter())
                    return

    async def main() -> float:
        opened: list[int] = []
        limits = httpx.Limits(max_connections=clients + 10)
        async with httpx.AsyncClient(timeout=None, limits=limits) as session:
            ready = asyncio.Event()
            tasks = [asyncio.create_task(client(ready, opened, session)) for _ in range(clients)]
            while len(opened) < clients:
                await asyncio.sleep(0.1)
            start = time.perf_counter()
            await asyncio.to_thread(
                hub.apply_all, [Update(identity, "bench", datetime.now(UTC), {"gate": "B2"})]
            )
            await asyncio.wait(tasks, timeout=120)
            return start

    start = asyncio.run(main())
    server.should_exit = True
    delays = sorted(t - start for t in arrivals)
    return percentile(delays, 0.5), delays[-1] if delays else float("nan"), len(delays)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clients", type=int, default=5000)
    args = parser.parse_args()
    count = 200 if args.quick else 2000
    print("| updates/s | changes | p50 ms | p99 ms | mean ms | polling floor p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for index, rate in enumerate((100, 1000)):
        latencies, base = latency_run(rate, count, 18700 + index)
        print(
            f"| {rate:,} | {len(latencies)}/{count} | {percentile(latencies, 0.5) * 1e3:.1f} | {percentile(latencies, 0.99) * 1e3:.1f} | {statistics.mean(latencies) * 1e3:.1f} | {percentile(base, 0.5) * 1e3:.1f} | {percentile(base, 0.99) * 1e3:.1f} |",
            flush=True,
        )
    clients = 500 if args.quick else args.clients
    p50, last, reached = fanout(clients, 18790)
    print(
        f"\none update to {clients:,} SSE clients: {reached:,} reached, p50 {p50 * 1e3:.0f} ms, last {last * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()
