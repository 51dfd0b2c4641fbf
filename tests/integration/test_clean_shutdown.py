"""SIGTERM to `jetbridge up`: the process stops taking work, lets a delivery in flight finish
(or, past JETBRIDGE_SHUTDOWN_SECONDS, hands it back so it is delivered after a restart), and
exits 0 without a traceback, within the bound. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.storage.schema import deliveries
from support.auth import as_operator
from support.processes import output_of, process_env
from support.servers import free_port
from support.webhook import Receiver, webhook_receiver

START_SECONDS = 120.0  # a loaded two-core machine starts a process slowly


def wait_for(check: Callable[[], Any], what: str, timeout: float = START_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def one_delivery_waiting(database_url: str, receiver: Receiver) -> None:
    """A rule sending every event to `receiver`, and one event published, nothing delivered:
    no worker runs in this process."""
    with TestClient(create_app(Settings(database_url=database_url, run_workers=False))) as client:
        as_operator(client)
        rule = {
            "name": "partner",
            "event_pattern": {"source": ["airport.gates"]},
            "targets": [{"id": "hook", "kind": "http", "url": receiver.url}],
        }
        assert client.put("/api/buses/default/rules/partner", json=rule).status_code == 200
        event = {
            "specversion": "1.0",
            "id": "evt-shutdown",
            "source": "airport.gates",
            "type": "flight.gate_changed",
            "data": {"gate": "A12"},
        }
        published = client.post("/api/buses/default/events", json={"entries": [event]})
        assert published.json()["entries"][0]["deliveries"] == 1, published.text


def waiting_deliveries(database_url: str) -> list[Any]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(deliveries.c.id, deliveries.c.lease_until)))
    finally:
        engine.dispose()


def start(database_url: str, log: Path, *args: str, **settings: str) -> subprocess.Popen[bytes]:
    env = process_env(database_url=database_url, delivery_poll_seconds="0.05", **settings)
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "jetbridge.cli", "up", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


class StreamReader(threading.Thread):
    """A client of a live stream (SSE), reading until the server ends the response."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.opened = threading.Event()
        self.ended_cleanly = False

    def run(self) -> None:
        with httpx.stream("GET", self.url, timeout=httpx.Timeout(10, read=None)) as answer:
            self.opened.set()
            for _ in answer.iter_lines():
                pass
        self.ended_cleanly = True  # no error: the response ended as HTTP says it should


def refuses_connections(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def exit_of(process: subprocess.Popen[bytes], log: Path, bound: float) -> tuple[int, float]:
    """SIGTERM the process; its exit code and how long it took to exit."""
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=bound + 30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"still running after SIGTERM:\n{output_of(log)}") from None
    return code, time.monotonic() - sent


def exited_cleanly(code: int, took: float, log: Path, *, within: float) -> str:
    """The process exited 0 within `within` seconds of SIGTERM, without a traceback; its log."""
    stderr = output_of(log)
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert took < within, took
    return stderr


def test_sigterm_lets_the_delivery_in_flight_finish_once_then_exits_cleanly(
    database_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "up.log"
    port = free_port()
    with webhook_receiver() as receiver:
        receiver.release = threading.Event()  # the target answers only when the test says
        one_delivery_waiting(database_url, receiver)
        process = start(database_url, log, "--port", str(port), shutdown_seconds="20")
        try:
            wait_for(receiver.arrived.is_set, f"the delivery\n{output_of(log)}")
            stream = StreamReader(f"http://127.0.0.1:{port}/api/fids/ZRH/departures/stream")
            stream.start()
            wait_for(stream.opened.is_set, "the live stream")
            sent = time.monotonic()
            process.send_signal(signal.SIGTERM)
            # Open streams are ended cleanly, so the clients reconnect elsewhere at once.
            wait_for(lambda: not stream.is_alive(), "the stream's end", timeout=20)
            assert stream.ended_cleanly
            # Shutting down: the server stops listening while the delivery is still in flight.
            wait_for(lambda: refuses_connections(port), "the port closed", timeout=20)
            assert process.poll() is None, output_of(log)
            receiver.release.set()
            code = process.wait(timeout=50)
            took = time.monotonic() - sent
        finally:
            receiver.release.set()
            if process.poll() is None:
                process.kill()
                process.wait()
        exited_cleanly(code, took, log, within=20 + 10)
        # Delivered exactly once, and done with: nothing is left to deliver again.
        assert len(receiver.requests) == 1
        assert json.loads(receiver.requests[0][1])["id"] == "evt-shutdown"
    assert waiting_deliveries(database_url) == []


def test_a_delivery_outlasting_the_bound_is_handed_back_and_delivered_after_restart(
    sqlite_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    with webhook_receiver() as receiver:
        receiver.release = threading.Event()  # never answers while the first worker runs
        one_delivery_waiting(sqlite_url, receiver)
        process = start(sqlite_url, log, "--role", "worker", shutdown_seconds="2")
        try:
            wait_for(receiver.arrived.is_set, f"the delivery\n{output_of(log)}")
            code, took = exit_of(process, log, bound=2)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stderr = exited_cleanly(code, took, log, within=2 + 10)
        assert "handed back" in stderr
        # Not lost: the delivery waits, its lease handed back rather than left to expire.
        ((_, lease_until),) = waiting_deliveries(sqlite_url)
        assert lease_until is None
        receiver.release.set()
        receiver.arrived.clear()
        again = start(sqlite_url, tmp_path / "again.log", "--role", "worker")
        try:
            wait_for(lambda: waiting_deliveries(sqlite_url) == [], "the redelivery")
            code, _ = exit_of(again, tmp_path / "again.log", bound=20)
        finally:
            if again.poll() is None:
                again.kill()
                again.wait()
        assert code == 0, output_of(tmp_path / "again.log")
        ids = [json.loads(body)["id"] for _, body in receiver.requests]
        assert ids == ["evt-shutdown", "evt-shutdown"]


def test_the_capture_role_stores_its_position_and_hands_its_lease_back_on_sigterm(
    tmp_path: Path,
) -> None:
    from datetime import date

    from jetbridge.aodb.legacy import legacy_metadata
    from jetbridge.aodb.simulator import AodbSimulator, plan_day
    from jetbridge.storage.db import create_database_engine
    from jetbridge.storage.schema import capture_leases, flights

    legacy = create_database_engine(f"sqlite:///{tmp_path / 'aodb.db'}")
    legacy_metadata.create_all(legacy)
    AodbSimulator(legacy, plan_day(seed=7, day=date(2026, 12, 1), rotations=3)).install()
    legacy.dispose()
    url = f"sqlite:///{tmp_path / 'jb.db'}"
    log = tmp_path / "capture.log"
    process = start(
        url, log, "--role", "capture", aodb_url=f"sqlite:///{tmp_path / 'aodb.db'}",
        shutdown_seconds="10",
    )  # fmt: skip

    def read(query: Any) -> list[Any]:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(query))
        except Exception:  # not created yet
            return []
        finally:
            engine.dispose()

    try:
        wait_for(lambda: len(read(select(flights.c.flight_key))) == 6, "the captured day")
        ((holder, lease_until),) = read(
            select(capture_leases.c.holder, capture_leases.c.lease_until)
        )
        assert holder and lease_until > time.time()
        code, took = exit_of(process, log, bound=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    exited_cleanly(code, took, log, within=10 + 10)
    # Handed back: another capturer may take the source at once, from the stored position.
    ((position, lease_until),) = read(
        select(capture_leases.c.position, capture_leases.c.lease_until)
    )
    assert position is not None
    assert lease_until == 0


def test_work_that_cannot_be_interrupted_does_not_hold_the_process_past_the_bound(
    sqlite_url: str, tmp_path: Path
) -> None:
    from support import handlers

    sink = tmp_path / "sink.txt"
    sink.touch()
    app = create_app(
        Settings(database_url=sqlite_url, run_workers=False), handlers=handlers.HANDLERS
    )
    with TestClient(app) as client:
        as_operator(client)
        rule = {
            "name": "stuck",
            "event_pattern": {"source": ["airport.gates"]},
            "targets": [{"id": "stuck", "kind": "python", "handler": "stuck"}],
        }
        assert client.put("/api/buses/default/rules/stuck", json=rule).status_code == 200
        event = {"specversion": "1.0", "id": "evt-stuck", "source": "airport.gates", "type": "t"}
        assert client.post("/api/buses/default/events", json={"entries": [event]}).is_success
    log = tmp_path / "worker.log"
    process = start(
        sqlite_url, log, "--role", "worker", shutdown_seconds="1",
        handler_plugins="support.handlers", test_sink=str(sink),
    )  # fmt: skip
    try:
        wait_for(lambda: sink.read_text() == "evt-stuck\n", f"the handler\n{output_of(log)}")
        code, took = exit_of(process, log, bound=1)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = exited_cleanly(code, took, log, within=1 + 5 + 10)
    assert "left to its lease" in stderr
    assert [row.id for row in waiting_deliveries(sqlite_url)] != []  # not lost
