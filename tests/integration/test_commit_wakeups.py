"""API processes sharing one PostgreSQL learn of each other's commits by LISTEN/NOTIFY, not by
polling: a board on one process shows a flight update pushed to another at once, although the
processes look at the log unprompted only once an hour."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from jetbridge.app import build_platform
from jetbridge.config import Settings
from jetbridge.events.wakeups import CommitListener
from support import aio
from support.processes import api_processes, process_env

AIDX = (Path(__file__).parents[1] / "unit" / "flights" / "data" / "aidx_departure.xml").read_bytes()
BOARD = "/api/fids/ZRH/departures/stream?date=2026-11-24"


class BoardReader(threading.Thread):
    """An SSE client of a board, keeping each flight frame's gate and when it arrived."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.snapshot = threading.Event()
        self.gates: list[tuple[float, str]] = []
        self.client = httpx.Client(timeout=httpx.Timeout(5, read=None))

    def close(self) -> None:
        """Hang up, so that the server can stop without waiting for this stream."""
        self.client.close()

    def run(self) -> None:
        with contextlib.suppress(httpx.HTTPError):  # the server stops at the test's end
            self._read()

    def _read(self) -> None:
        with self.client.stream("GET", self.url) as response:
            kind = ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "snapshot":
                    self.snapshot.set()
                elif line.startswith("data: ") and kind == "flight":
                    row: dict[str, Any] = json.loads(line[6:])
                    self.gates.append((time.monotonic(), str(row.get("gate"))))


def aidx_with_gate(gate: str) -> bytes:
    return AIDX.replace(b"E24", gate.encode())


def wait_for(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_board_on_one_api_process_sees_a_commit_made_by_another(
    postgres_url: str, tmp_path: Path
) -> None:
    platform = build_platform(Settings(database_url=postgres_url, run_workers=False))
    platform.prepare()
    from jetbridge.ops.identity import store

    with platform.engine.begin() as conn:
        key = store.create_api_key(
            conn, name="feed", roles=frozenset({"service"}), tenant=None, created_by="tests"
        )["key"]
    platform.engine.dispose()
    feed = {"Authorization": f"Bearer {key}", "Content-Type": "application/xml"}
    # Polling alone would show the change only after an hour.
    env = process_env(database_url=postgres_url, run_workers="false", live_poll_seconds="3600")
    with api_processes(env, [tmp_path / "a.log", tmp_path / "b.log"]) as (first, second):
        boards = [BoardReader(f"{first}{BOARD}"), BoardReader(f"{second}{BOARD}")]
        for board in boards:
            board.start()
            assert board.snapshot.wait(30), "the board sent no snapshot"
        latencies = []
        for n, (writer, gate) in enumerate([(second, "B1"), (first, "A2"), (second, "B3")]):
            sent = time.monotonic()
            answer = httpx.post(
                f"{writer}/api/ingest/aidx", content=aidx_with_gate(gate), headers=feed, timeout=30
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["applied"], answer.json()
            # Generous for a loaded machine, and far below the hour polling would take.
            assert wait_for(lambda n=n: all(len(b.gates) > n for b in boards), 20), [
                b.gates for b in boards
            ]
            latencies += [b.gates[n][0] - sent for b in boards]
            assert [b.gates[n][1] for b in boards] == [gate, gate]
        for board in boards:
            board.close()
    print(json.dumps({"board_latency_seconds_max": round(max(latencies), 3)}))


def test_the_commit_listener_reconnects_and_asks_for_a_look(postgres_url: str) -> None:
    """After its connection is cut, the listener reconnects by itself and signals `None` (look
    once: commits meanwhile were not announced), then hears commits again."""
    from sqlalchemy import create_engine, text

    from jetbridge.storage.db import normalise_url

    heard: list[str | None] = []
    engine = create_engine(normalise_url(postgres_url))

    async def scenario() -> None:
        import asyncio

        stop = asyncio.Event()
        listener = CommitListener(postgres_url, heard.append)
        task = asyncio.create_task(listener.run(stop))

        async def until(check: Any) -> None:
            for _ in range(3000):
                if check():
                    return
                await asyncio.sleep(0.01)
            raise AssertionError(f"gave up waiting; heard {heard}")

        def notify(bus: str) -> None:
            with engine.begin() as conn:
                conn.execute(text("SELECT pg_notify('jetbridge_commits', :bus)"), {"bus": bus})

        await until(lambda: listener.listening)
        await asyncio.to_thread(notify, "ops")
        await until(lambda: "ops" in heard)
        assert heard[0] is None
        with engine.begin() as conn:  # cut the listener's connection, as a restart would
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE 'LISTEN%' AND datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                )
            )
        await until(lambda: heard.count(None) == 2 and listener.listening)
        await asyncio.to_thread(notify, "after")
        await until(lambda: "after" in heard)
        stop.set()
        await asyncio.wait_for(task, 10)

    try:
        aio.run(scenario())
    finally:
        engine.dispose()
