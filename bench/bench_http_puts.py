"""Event intake over HTTP: concurrent keep-alive clients each putting single events.

`jetbridge up` runs in its own process (SQLite, then PostgreSQL when a URL is given); the
clients run in another process: N HTTP/1.1 keep-alive connections, each sending one
`POST /api/buses/default/events` with one event, waiting for its answer, and sending the next,
for T seconds. Baseline in the same run: a bare FastAPI endpoint under the same uvicorn that
reads the body and answers without doing any work, driven by the same clients.

The bare endpoint runs first and again last; each share is of the mean of its two rates, as
the load of a shared machine drifts over a run. The server's CPU time per answered put (user
and system, all its threads, read from /proc) depends far less on that load than the rate
does. `--before-src DIR` also runs the server from another copy of the source tree (for
example the `src` of `git archive <commit> src`), row by row beside this one, for a
before/after comparison in one run.

Without `--rate` each client sends its next put as soon as the last is answered: the server's
most, with the latency of a saturated server. `--rate R` aims at R puts/s in all: each client
sends on a schedule (every clients/R seconds, the clients staggered), and a put's latency counts
from when it was due, so a late answer also counts against the puts queued behind it (no
coordinated omission).

    python bench/bench_http_puts.py [--clients 50] [--seconds 20] [--rate R]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/test] [--before-src DIR]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

BARE = """
import sys, uvicorn
from fastapi import FastAPI, Request
app = FastAPI()

@app.post("/api/buses/default/events")
async def put(request: Request) -> dict:
    await request.body()
    return {"entries": [{"event_id": "x", "seq": 1, "duplicate": False, "deliveries": 0}]}

@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""

# The clients: raw HTTP/1.1 on asyncio streams with httptools parsing the answers, so the
# client process spends as little of the machine's CPU as it can.
CLIENTS = r"""
import asyncio, json, sys, time
import httptools, uvloop

port, clients, seconds, key = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
rate = float(sys.argv[5])
interval = clients / rate if rate > 0 else 0.0

class Answer:
    def __init__(self):
        self.done = False
        self.status = 0
        self.body = b""
    def on_message_complete(self):
        self.done = True
    def on_body(self, data):
        self.body += data

async def client(n, stop, samples, failures):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    due = time.perf_counter() + interval * n / clients
    while time.perf_counter() < stop:
        if interval:
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            start, due = due, due + interval
            if start >= stop:
                break
        i += 1
        body = json.dumps({"entries": [{
            "specversion": "1.0", "id": f"c{n}-{i}-{time.time_ns()}",
            "source": "bench.flights", "type": "flight.gate_changed",
            "partitionkey": f"BA{n:04d}", "data": {"flight": f"BA{n:04d}", "gate": "A12"},
        }]}).encode()
        head = (
            f"POST /api/buses/default/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        if not interval:
            start = time.perf_counter()
        writer.write(head + body)
        answer = Answer()
        parser = httptools.HttpResponseParser(answer)
        while not answer.done:
            data = await reader.read(65536)
            if not data:
                raise RuntimeError("the server closed the connection")
            parser.feed_data(data)
        elapsed = time.perf_counter() - start
        if parser.get_status_code() == 200:
            samples.append(elapsed)
        else:
            failures.append(parser.get_status_code())
    writer.close()

async def main():
    samples, failures = [], []
    stop = time.perf_counter() + seconds
    started = time.perf_counter()
    await asyncio.gather(*(client(n, stop, samples, failures) for n in range(clients)))
    wall = time.perf_counter() - started
    print(json.dumps({"samples": samples, "failures": failures[:20],
                      "failed": len(failures), "wall": wall}))

uvloop.run(main())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(base: str, process: subprocess.Popen[bytes], deadline: float = 120.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{base} did not become ready")


def drive(port: int, clients: int, seconds: float, key: str, rate: float) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CLIENTS, str(port), str(clients), str(seconds), key, str(rate)],
        capture_output=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system, all threads) a process has used so far; NaN off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    # utime and stime: the 14th and 15th fields, counted from the process id.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(
    server: subprocess.Popen[bytes], port: int, clients: int, seconds: float, key: str, rate: float
) -> dict[str, Any]:
    """`drive`, with the CPU time the server used meanwhile."""
    start = cpu_seconds(server.pid)
    result = drive(port, clients, seconds, key, rate)
    result["cpu"] = cpu_seconds(server.pid) - start
    return result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run_bare(clients: int, seconds: float, rate: float) -> dict[str, Any]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", BARE, str(port)])
    try:
        wait_ready(f"http://127.0.0.1:{port}", server)
        return measured(server, port, clients, seconds, "none", rate)
    finally:
        server.terminate()
        server.wait(30)


def run_platform(
    database_url: str | None,
    clients: int,
    seconds: float,
    rate: float,
    source: str | None = None,
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="jetbridge-bench-puts-"))
    port = free_port()
    env = {
        **os.environ,
        **({"PYTHONPATH": source} if source else {}),
        "JETBRIDGE_DATA_DIR": str(workdir),
        "JETBRIDGE_PORT": str(port),
        "JETBRIDGE_HOST": "127.0.0.1",
        "JETBRIDGE_RATE_LIMIT_PUBLIC": "off",
        "JETBRIDGE_RATE_LIMIT_LOGIN": "off",
    }
    if database_url:
        env["JETBRIDGE_DATABASE_URL"] = database_url
        # Every process on a shared database seals personal data with the same keys.
        env.setdefault("JETBRIDGE_DATA_KEYS", f"bench:{base64.b64encode(os.urandom(32)).decode()}")
    command = [sys.executable, "-c", "from jetbridge.cli import main; main()"]
    made = subprocess.run(
        [*command, "api-keys", "create", "--name", "bench", "--roles", "admin"],
        env=env,
        capture_output=True,
        check=True,
    )
    key = json.loads(made.stdout)["key"]
    server = subprocess.Popen(
        [*command, "up"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", server)
        return measured(server, port, clients, seconds, key, rate)
    finally:
        server.terminate()
        server.wait(60)
        shutil.rmtree(workdir, ignore_errors=True)


def fresh_postgres(url: str) -> str:
    """A new database on the server at `url` for this run."""
    import psycopg

    name = f"bench_puts_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + f"/{name}"


def drop_postgres(url: str, made: str) -> None:
    """Drop the database `fresh_postgres` made for this run."""
    import psycopg

    name = made.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--postgres-url", help="also run on PostgreSQL (a fresh database on it)")
    parser.add_argument("--before-src", help="also run the server from this source tree")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="puts/s aimed at in all (0: as fast as answered)"
    )
    args = parser.parse_args()
    start_load = os.getloadavg()
    versions: list[tuple[str, str | None]] = [("", None)]
    if args.before_src:
        versions = [("before: ", args.before_src), ("after: ", None)]
    rows: list[tuple[str, dict[str, Any]]] = [
        ("bare FastAPI endpoint (no work)", run_bare(args.clients, args.seconds, args.rate))
    ]
    for prefix, source in versions:
        result = run_platform(None, args.clients, args.seconds, args.rate, source)
        rows.append((f"{prefix}jetbridge up, SQLite", result))
    if args.postgres_url:
        for prefix, source in versions:
            url = fresh_postgres(args.postgres_url)
            try:
                result = run_platform(url, args.clients, args.seconds, args.rate, source)
            finally:
                drop_postgres(args.postgres_url, url)
            rows.append((f"{prefix}jetbridge up, PostgreSQL", result))
    # The machine's load drifts over a run: the baseline is measured again at the end, and each
    # share is of the mean of the two.
    rows.append(
        ("bare FastAPI endpoint again, at the end", run_bare(args.clients, args.seconds, args.rate))
    )
    load = os.getloadavg()
    pace = f"{args.rate:,.0f} puts/s aimed at in all" if args.rate else "each as fast as answered"
    print(
        f"{args.clients} keep-alive clients ({pace}), one event per request, "
        f"{args.seconds:.0f} s each; "
        f"load average before the run {start_load[0]:.2f} {start_load[1]:.2f} "
        f"{start_load[2]:.2f}, after it {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n"
    )
    print("| server | puts/s | p50 ms | p99 ms | failed | share of bare | server CPU ms/put |")
    print("|---|---|---|---|---|---|---|")
    bare_rate = sum(len(rows[i][1]["samples"]) / rows[i][1]["wall"] for i in (0, -1)) / 2
    for label, result in rows:
        samples = result["samples"]
        rate = len(samples) / result["wall"]
        print(
            f"| {label} | {rate:,.0f} | {percentile(samples, 0.5) * 1e3:.1f} "
            f"| {percentile(samples, 0.99) * 1e3:.1f} | {result['failed']} "
            f"| {rate / bare_rate:.0%} | {result['cpu'] / max(1, len(samples)) * 1e3:.2f} |"
        )
        if result["failures"]:
            print(f"  statuses of failed requests: {result['failures']}", file=sys.stderr)


if __name__ == "__main__":
    main()
