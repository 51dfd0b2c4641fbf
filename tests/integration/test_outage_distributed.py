"""Outages in distributed mode: PostgreSQL or nats-server restarted under a load of event puts
and webhook deliveries, with a `jetbridge up --role api` and a `jetbridge up --role worker`
process; and change capture through an outage of the platform's database.

Puts during a database outage are answered 503 with Retry-After and the client sends them
again; after recovery every accepted event is delivered, none lost, duplicates only as
at-least-once allows; the processes run on without a restart."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError
from test_capture_failover import flight_key, row
from test_jetstream_outbox import outbox_size, stream_messages

from jetbridge.aodb.legacy import legacy_metadata, movements
from jetbridge.aodb.settings import load_capture_settings
from jetbridge.app import Platform, build_platform
from jetbridge.config import Settings
from jetbridge.events import registry
from jetbridge.events.jetstream import SubjectScheme
from jetbridge.events.specs import RuleSpec
from jetbridge.flights.capture import capturer
from jetbridge.flights.hub import FlightHub, get_flight
from jetbridge.ops.identity import store
from jetbridge.storage.db import create_database_engine
from support import aio
from support.nats import nats_server
from support.postgres import private_postgres
from support.processes import output_of, process_env, stop, wait_until_answering
from support.servers import free_port
from support.webhook import Receiver, webhook_receiver

EVENTS = 400
BATCH = 5
CONCURRENCY = 4
IN_FLIGHT = 4


class Writer(threading.Thread):
    """A client putting events `out-0` ... in batches: the first half at once, the second
    when released; a batch answered 503 is sent again after its Retry-After."""

    def __init__(self, base: str, auth: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.base, self.auth = base, auth
        self.accepted = 0
        self.refused: list[str] = []  # the Retry-After of each 503
        self.answers: Counter[int] = Counter()
        self.release = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(timeout=60) as client:
                for first in range(0, EVENTS, BATCH):
                    if first == EVENTS // 2:
                        assert self.release.wait(300), "the second half was never released"
                    self._put(client, first)
        except BaseException as exc:
            self.failure = exc

    def _put(self, client: httpx.Client, first: int) -> None:
        entries = [
            {
                "specversion": "1.0",
                "id": f"out-{n}",
                "source": "outage.test",
                "type": "t",
                "data": {"n": n},
            }
            for n in range(first, first + BATCH)
        ]
        while True:
            answer = client.post(
                f"{self.base}/api/buses/default/events",
                json={"entries": entries},
                headers=self.auth,
            )
            self.answers[answer.status_code] += 1
            if answer.status_code != 503:
                break
            assert answer.json()["error"] == "ServiceUnavailable", answer.text
            self.refused.append(answer.headers["Retry-After"])
            time.sleep(float(answer.headers["Retry-After"]))
        assert answer.status_code == 200, answer.text
        self.accepted += BATCH


def wait_for(check: Callable[[], bool], what: str, logs: list[Path], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}\n" + "\n".join(output_of(log) for log in logs))
        time.sleep(0.05)


def received(receiver: Receiver) -> Counter[str]:
    with receiver.lock:
        return Counter(headers["x-jetbridge-event-id"] for headers, _ in receiver.requests)


def prepared(database_url: str, nats_url: str, prefix: str, hook: str) -> tuple[Platform, str]:
    """The schema, a rule sending every test event to `hook`, and an operator's API key."""
    platform = build_platform(
        Settings(database_url=database_url, nats_url=nats_url, nats_prefix=prefix)
    )
    platform.prepare()
    spec = RuleSpec.model_validate(
        {
            "name": "hook",
            "event_pattern": {"source": ["outage.test"]},
            "targets": [{"id": "hook", "kind": "http", "url": hook}],
        }
    )
    with platform.backbone.transaction() as conn:
        registry.put_rule(conn, bus="default", spec=spec, handlers=platform.backbone.handlers)
        key = store.create_api_key(
            conn, name="load", roles=frozenset({"admin"}), tenant=None, created_by="tests"
        )
    return platform, str(key["key"])


@contextmanager
def api_and_worker(env: dict[str, str], logs: list[Path]) -> Iterator[tuple[str, list[Any]]]:
    port = free_port()
    commands = [["--role", "api", "--port", str(port)], ["--role", "worker"]]
    processes = []
    try:
        for command, log in zip(commands, logs, strict=True):
            with log.open("wb") as out:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "jetbridge.cli", "up", *command],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        base = f"http://127.0.0.1:{port}"
        wait_until_answering(processes[0], base, logs[0], time.monotonic() + 180)
        yield base, processes
    finally:
        for process in processes:
            stop(process)


def check_delivered_each_at_least_once(receiver: Receiver, logs: list[Path]) -> Counter[str]:
    expected = {f"out-{n}" for n in range(EVENTS)}
    wait_for(lambda: set(received(receiver)) == expected, "not every event was delivered", logs)
    counts = received(receiver)
    assert set(counts) == expected, "none lost, nothing else"
    return counts


@pytest.mark.timeout(900)  # two processes and a restart on a machine that may be loaded
def test_postgres_restarted_under_load_loses_nothing(
    nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    logs = [tmp_path / "api.log", tmp_path / "worker.log"]
    with private_postgres() as database, webhook_receiver() as receiver:
        gate = receiver.release = threading.Event()
        gate.set()
        url = database.database()
        platform, key = prepared(url, nats_url, nats_prefix, receiver.url)
        env = process_env(
            database_url=url,
            nats_url=nats_url,
            nats_prefix=nats_prefix,
            delivery_lease_seconds="2",
            delivery_concurrency=str(CONCURRENCY),
        )
        with api_and_worker(env, logs) as (base, processes):
            writer = Writer(base, {"Authorization": f"Bearer {key}"})
            writer.start()
            wait_for(lambda: sum(received(receiver).values()) >= 20, "no deliveries", logs)
            # Hold the webhook's answers so that deliveries are in flight when the database
            # goes; they are answered while it is away and cannot be marked done.
            gate.clear()
            held = sum(received(receiver).values())
            wait_for(lambda: sum(received(receiver).values()) > held, "none in flight", logs)
            database.stop()
            gate.set()
            writer.release.set()
            # Away longer than a delivery's retries to record its result: in flight, answered,
            # yet not marked done, so delivered again once the database is back.
            wait_for(lambda: len(writer.refused) >= 6, "no put was refused", logs)
            assert len(set(received(receiver))) < EVENTS, "the outage lands mid-way"
            database.start()
            wait_for(lambda: not writer.is_alive(), "the writer did not finish", logs)
            assert writer.failure is None, writer.failure
            assert writer.accepted == EVENTS
            assert set(writer.refused) == {"1"}
            assert set(writer.answers) == {200, 503}

            counts = check_delivered_each_at_least_once(receiver, logs)
            # At least once: only what was in flight when the database went may come twice.
            assert sum(counts.values()) - EVENTS <= 2 * CONCURRENCY, counts.most_common(10)
            wait_for(
                lambda: platform.backbone.log.pending() == 0 and outbox_size(platform) == 0,
                "deliveries or the outbox were left behind",
                logs,
            )
            assert all(process.poll() is None for process in processes), "both still run"
            ready = httpx.get(f"{base}/readyz", timeout=30)
            assert ready.status_code == 200, ready.text
        scheme = SubjectScheme(nats_prefix)
        relayed = aio.run(stream_messages(nats_url, scheme))
        assert sorted(n for _, _, n in relayed) == list(range(EVENTS)), "each relayed once"
        platform.engine.dispose()
    for log in logs:
        assert "Traceback" not in log.read_text(errors="replace"), output_of(log)


@pytest.mark.timeout(900)  # two processes and a restart on a machine that may be loaded
def test_nats_restarted_under_load_loses_nothing_and_puts_go_on(
    postgres_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    logs = [tmp_path / "api.log", tmp_path / "worker.log"]
    with webhook_receiver() as receiver, nats_server(tmp_path / "jetstream") as nats:
        platform, key = prepared(postgres_url, nats.url, nats_prefix, receiver.url)
        env = process_env(
            database_url=postgres_url,
            nats_url=nats.url,
            nats_prefix=nats_prefix,
            delivery_concurrency=str(CONCURRENCY),
            nats_delivery_in_flight=str(IN_FLIGHT),
        )
        with api_and_worker(env, logs) as (base, processes):
            writer = Writer(base, {"Authorization": f"Bearer {key}"})
            writer.start()
            wait_for(lambda: sum(received(receiver).values()) >= 20, "no deliveries", logs)
            nats.stop()
            writer.release.set()
            # Puts do not depend on NATS: all are accepted while it is away, into the outbox.
            wait_for(lambda: not writer.is_alive(), "the writer did not finish", logs)
            assert writer.failure is None, writer.failure
            assert set(writer.answers) == {200} and writer.accepted == EVENTS
            assert outbox_size(platform) > 0
            wait_for(lambda: not_ready(base).startswith(("NATS", "JetStream")), "ready", logs)
            nats.start()
            counts = check_delivered_each_at_least_once(receiver, logs)
            # Deliveries travel through JetStream: those whose acknowledgement was cut off by the
            # stop are delivered again, at most what the worker held: the messages in flight on
            # each durable consumer (shard) of the target.
            repeats = sum(counts.values()) - EVENTS
            shards = Settings.model_fields["nats_delivery_shards"].default
            assert 0 <= repeats <= IN_FLIGHT * shards, counts
            wait_for(lambda: outbox_size(platform) == 0, "the outbox was not relayed", logs)
            wait_for(lambda: not_ready(base) == "", "not ready after NATS returned", logs)
            assert all(process.poll() is None for process in processes), "both still run"
        relayed = aio.run(stream_messages(nats.url, SubjectScheme(nats_prefix)))
        assert sorted(n for _, _, n in relayed) == list(range(EVENTS)), "each relayed once"
        platform.engine.dispose()
    for log in logs:
        assert "Traceback" not in log.read_text(errors="replace"), output_of(log)


def not_ready(base: str) -> str:
    """Why the API process says NATS is not ready ("" when it is)."""
    answer = httpx.get(f"{base}/readyz", timeout=30).json()
    reason = answer["checks"]["nats"]
    return "" if reason == "ok" else str(reason)


def test_change_capture_outlives_an_outage_of_the_platform_database(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="jetbridge.flights.capture")
    source_url = f"sqlite:///{tmp_path / 'aodb.db'}"
    legacy = create_database_engine(source_url)
    legacy_metadata.create_all(legacy)
    with private_postgres() as database:
        platform = build_platform(Settings(database_url=database.database(), run_workers=False))
        platform.prepare()
        settings = load_capture_settings(None, aodb_url=source_url)
        worker = capturer(settings, "aodb", FlightHub(platform.backbone))
        halt = threading.Event()
        thread = threading.Thread(target=worker.run, args=(halt,), daemon=True)
        try:
            # Started while the database is away: it cannot take its lease yet, and waits.
            database.stop()
            thread.start()
            wait_for(lambda: "capture aodb: unavailable" in caplog.text, "no outage seen", [])
            with legacy.begin() as conn:
                conn.execute(movements.insert(), [row(1)])
            database.start()
            wait_for(lambda: in_hub(platform, 1), "capture did not start after the outage", [])
            assert "capture aodb: available again" in caplog.text
            # Away again while capturing; the source goes on changing meanwhile.
            caplog.clear()
            database.stop()
            with legacy.begin() as conn:
                conn.execute(movements.insert(), [row(2)])
            wait_for(lambda: "capture aodb: unavailable" in caplog.text, "no outage seen", [])
            database.start()
            wait_for(lambda: in_hub(platform, 2), "capture did not go on", [])
            assert thread.is_alive()
        finally:
            halt.set()
            thread.join(timeout=60)
        platform.engine.dispose()
    legacy.dispose()


def in_hub(platform: Platform, key: int) -> bool:
    try:
        with platform.backbone.reading() as conn:
            return get_flight(conn, flight_key(key)) is not None
    except OperationalError:  # the database is not back yet
        return False
