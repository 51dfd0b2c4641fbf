"""Transient database errors (a busy SQLite file, a PostgreSQL serialization failure or lost
connection) are told apart from others, and deliveries that meet one are retried, not dead-lettered.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.flights.hub import FlightHub
from jetbridge.flights.merge import Update
from jetbridge.flights.model import FlightIdentity
from jetbridge.loops import poll_until_stopped
from jetbridge.storage.db import create_database_engine, normalise_url
from jetbridge.storage.migrate import upgrade
from jetbridge.storage.transient import is_transient, retry_transient
from jetbridge.workflows.engine import WorkflowEngine
from support.auth import as_operator
from support.webhook import webhook_receiver

FLIGHT = FlightIdentity.create(
    airline="LX",
    flight_number="318",
    origin_date="2026-11-24",
    departure_airport="ZRH",
    arrival_airport="LHR",
)
T0 = datetime(2026, 11, 24, 6, tzinfo=UTC)


def unless_unavailable(response: Any) -> Any:
    """The response, or None while the platform answers 503 (its database busy)."""
    return None if response.status_code == 503 else response


def wait_for(predicate: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def raised(step: Callable[[], object]) -> BaseException:
    with pytest.raises(Exception) as caught:
        step()
    return caught.value


def hold_write_lock(sqlite_url: str) -> sqlite3.Connection:
    holder = sqlite3.connect(str(make_url(sqlite_url).database), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_sqlite_locked_is_transient_and_a_constraint_is_not(sqlite_url: str) -> None:
    engine = create_database_engine(sqlite_url, busy_timeout=0.05)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE probe (id INTEGER PRIMARY KEY)"))
        conn.execute(text("INSERT INTO probe VALUES (1)"))
    holder = hold_write_lock(sqlite_url)
    try:

        def write() -> None:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO probe VALUES (2)"))

        locked = raised(write)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "database is locked" in str(locked)
    assert is_transient(locked)

    def duplicate() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO probe VALUES (1)"))

    assert not is_transient(raised(duplicate))
    assert not is_transient(ValueError("database is locked"))
    engine.dispose()


def test_postgres_serialization_failure_and_lost_connection_are_transient(
    postgres_url: str,
) -> None:
    engine = create_engine(normalise_url(postgres_url))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE probe (id INTEGER PRIMARY KEY, n INTEGER)"))
        conn.execute(text("INSERT INTO probe VALUES (1, 0)"))
    first = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    second = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    with first.begin(), second.begin():
        second.execute(text("SELECT n FROM probe WHERE id = 1"))
        first.execute(text("UPDATE probe SET n = 1 WHERE id = 1"))
        first.commit()
        conflict = raised(lambda: second.execute(text("UPDATE probe SET n = 2 WHERE id = 1")))
    assert isinstance(getattr(conflict, "orig", None), psycopg.errors.SerializationFailure)
    assert is_transient(conflict)
    victim = engine.connect()
    pid = victim.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    lost = raised(lambda: victim.execute(text("SELECT 1")))
    assert is_transient(lost)
    bad_sql = raised(lambda: engine.connect().execute(text("SELECT * FROM no_such_table")))
    assert not is_transient(bad_sql)
    for conn in (first, second, victim):
        conn.close()
    engine.dispose()


def test_a_locked_database_after_a_webhook_is_retried_not_dead_lettered(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = Settings(
        database_url=sqlite_url,
        delivery_poll_seconds=0.05,
        retry_base_seconds=0.05,
        sqlite_busy_timeout=0.2,
    )
    with webhook_receiver() as receiver:
        app = create_app(settings)
        with TestClient(app) as client:
            # With so short a busy timeout the set-up itself may meet the platform's own
            # writers on a loaded machine: it is retried, as the platform retries its writes.
            as_operator(client)
            hub = FlightHub(app.state.platform.backbone)
            first = Update(FLIGHT, "aodb", T0, {"gate": "A1"})
            retry_transient(lambda: hub.apply_all([first]), what="the first update")
            subscribed = wait_for(
                lambda: unless_unavailable(
                    client.post(
                        "/api/subscriptions",
                        json={"flight_key": FLIGHT.key, "channel": "webhook", "url": receiver.url},
                    )
                )
            )
            subscribed.raise_for_status()
            receiver.release = threading.Event()
            second = Update(FLIGHT, "aodb", T0 + timedelta(minutes=1), {"gate": "A7"})
            retry_transient(lambda: hub.apply_all([second]), what="the second update")
            assert receiver.arrived.wait(timeout=20)
            # The webhook was sent; while it answers, another writer takes the database and
            # keeps it for longer than one attempt to record the delivery waits.
            caplog.clear()
            holder = hold_write_lock(sqlite_url)
            try:
                receiver.release.set()
                # Until recording the delivery has met the lock (other loops may meet it first).
                wait_for(lambda: "completing delivery" in caplog.text)
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            wait_for(lambda: app.state.platform.backbone.log.pending() == 0)
            assert client.get("/api/dlq").json() == []
            assert len(receiver.requests) >= 1
            assert any("transient database error" in r.getMessage() for r in caplog.records)


def test_a_workflow_commit_that_meets_a_locked_database_goes_on_without_running_again(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    engine = create_database_engine(sqlite_url, busy_timeout=0.2)
    upgrade(engine)
    calls: list[str] = []
    holders: list[sqlite3.Connection] = []

    def reserve(_: Any) -> str:
        # Another writer takes the database just as the task's result is to be recorded.
        calls.append("reserve")
        holder = sqlite3.connect(
            str(make_url(sqlite_url).database), isolation_level=None, check_same_thread=False
        )
        holder.execute("BEGIN IMMEDIATE")
        holders.append(holder)
        return "seat"

    workflows = WorkflowEngine(engine, {"Reserve": reserve, "Pay": lambda _: calls.append("pay")})
    definition = {
        "StartAt": "Reserve",
        "States": {
            "Reserve": {"Type": "Task", "Resource": "Reserve", "Next": "Pay"},
            "Pay": {"Type": "Task", "Resource": "Pay", "End": True},
        },
    }
    workflows.start(name="locked-1", definition=definition, input={})
    worker = threading.Thread(target=workflows.run_one)
    worker.start()
    try:
        wait_for(lambda: any("transient database error" in r.getMessage() for r in caplog.records))
    finally:
        for holder in wait_for(lambda: holders):
            holder.execute("ROLLBACK")
            holder.close()
    worker.join(timeout=30)
    assert workflows.describe(name="locked-1")["status"] == "SUCCEEDED"
    assert calls == ["reserve", "pay"]
    engine.dispose()


def test_polling_loops_back_off_while_the_database_is_locked_and_go_on(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The loop that runs change capture, the workflow workers and the MQTT bridge."""
    caplog.set_level(logging.WARNING)
    engine = create_database_engine(sqlite_url, busy_timeout=0.05)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE probe (id INTEGER PRIMARY KEY)"))
    written: list[float] = []
    attempts: list[float] = []

    def step() -> bool:
        attempts.append(time.monotonic())
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO probe DEFAULT VALUES"))
        written.append(time.monotonic())
        return False

    holder = hold_write_lock(sqlite_url)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    runner = threading.Thread(
        target=lambda: loop.run_until_complete(
            poll_until_stopped(step, stop, interval=0.01, name="probe capture")
        )
    )
    runner.start()
    try:
        wait_for(lambda: len(attempts) >= 6)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    wait_for(lambda: written)
    loop.call_soon_threadsafe(stop.set)
    runner.join(timeout=30)
    loop.close()
    pauses = [later - earlier for earlier, later in itertools.pairwise(attempts[:6])]
    assert pauses[4] > pauses[0] + 0.2, f"backing off: {pauses}"
    # The outage is two lines, whatever the number of attempts: when it began, when it ended.
    lines = [r for r in caplog.records if r.name == "jetbridge.loops"]
    assert [r.getMessage().split(":")[0] for r in lines] == ["probe capture"] * 2
    assert "unavailable (database is locked)" in lines[0].getMessage()
    assert "available again after" in lines[1].getMessage()
    assert all(r.exc_info is None for r in lines)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    engine.dispose()
