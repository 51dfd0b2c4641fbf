"""One change to a booked flight reaching every passenger following it on /trips.

A flight is published from a schedule (hub + catalogue); `jetbridge up` serves it in a process of
its own. N clients (raw asyncio streams in a few client processes, as in `sse_fanout.py`) each
hold `GET /api/trips/stream?flight=KEY`, as N passengers of that flight looking at their trips.
Once all have their snapshot, the bench commits the flight's cancellation through the hub and
every client notes when the frame saying so arrives (ms from just before the commit). Baseline
in the same run: a bare asyncio server writing one pre-built frame of the same size to every
connection, the floor for one Python process writing to that many sockets here.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench_fids_latency import fanout_row, free_port, sse_frame, wait_for_http
from jetbridge.app import build_platform
from jetbridge.booking.catalog import ScheduleEntry
from jetbridge.config import Settings
from jetbridge.flights.hub import FlightHub
from jetbridge.flights.merge import Update
from jetbridge.schedules import publish_schedule
from sse_fanout import Fanout, baseline_process, measure, raise_fd_limit

MARKER = b'"status": "cancelled"'


def run(clients: int, processes: int) -> tuple[Fanout, Fanout]:
    directory = Path(tempfile.mkdtemp(prefix="jetbridge-trips-"))
    url = f"sqlite:///{directory / 'jb.db'}"
    platform = build_platform(Settings(database_url=url, run_workers=False))
    platform.prepare()
    departure = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    entry = ScheduleEntry(
        airline="LX", flight_number="14", origin="ZRH", destination="JFK", departure=departure,
        arrival=departure + timedelta(minutes=520), aircraft_type="B77W", currency="CHF",
        fares={"economy": 90_000}, terminal="1",
    )  # fmt: skip
    publish_schedule(platform.backbone, [entry])
    key = entry.identity.key
    path = f"/api/trips/stream?flight={key}"
    port = free_port()
    env = {
        **os.environ,
        "JETBRIDGE_DATABASE_URL": url,
        "JETBRIDGE_RUN_WORKERS": "false",
        "JETBRIDGE_DATA_DIR": str(directory),
        "JETBRIDGE_STREAM_CONNECTIONS_PER_CLIENT": "0",
        "JETBRIDGE_RATE_LIMIT_PUBLIC": "off",
    }
    command = [sys.executable, "-m", "jetbridge.cli", "up", "--port", str(port)]
    log = (directory / "server.log").open("wb")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    hub = FlightHub(platform.backbone)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/flights/{key}")
        status = httpx.get(f"http://127.0.0.1:{port}/api/flights/{key}").json()
        jetbridge = measure(
            host="127.0.0.1", port=port, path=path, clients=clients, processes=processes,
            marker=MARKER, server_pid=server.pid,
            fire=lambda: hub.apply_all(
                [Update(entry.identity, "bench", datetime.now(UTC), {"status": "cancelled"})]
            ),
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        platform.engine.dispose()
    from jetbridge.flights.passenger_view import trip_flight

    snapshot = sse_frame("snapshot", json.dumps([trip_flight(status)]))
    frame = sse_frame("flight", json.dumps(trip_flight(status | {"status": "cancelled"})))
    return jetbridge, baseline(clients, processes, path, snapshot, frame)


def baseline(clients: int, processes: int, path: str, snapshot: bytes, frame: bytes) -> Fanout:
    """The same clients against a bare asyncio server writing one pre-built frame to all."""
    context = multiprocessing.get_context("spawn")
    port = free_port()
    parent, child = context.Pipe()
    proc = context.Process(target=baseline_process, args=(child, port, snapshot, frame))
    proc.start()
    parent.recv()
    assert proc.pid is not None
    try:
        return measure(
            host="127.0.0.1", port=port, path=path, clients=clients, processes=processes,
            marker=MARKER, server_pid=proc.pid, fire=lambda: parent.send("fire"),
        )  # fmt: skip
    finally:
        parent.send("end")
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--client-processes", type=int, default=2)
    args = parser.parse_args()
    raise_fd_limit()
    jetbridge, bare = run(args.clients, args.client_processes)
    print(
        f"one cancellation to {args.clients:,} passengers following the flight on /trips "
        f"({args.client_processes} client processes, the server in its own); ms from the commit:\n"
    )
    print("| server | reached | p50 ms | p99 ms | last ms | server CPU ms |")
    print("|---|---|---|---|---|---|")
    print(fanout_row("jetbridge (`jetbridge up`), /api/trips/stream", jetbridge))
    print(fanout_row("baseline: bare asyncio server, one pre-built frame", bare), flush=True)


if __name__ == "__main__":
    main()
