"""Distributed mode's delivery: durable JetStream consumers deliver each event's effect once in
the normal case, one flight's events in order; failures are retried with backoff, then filed
in the dead-letter stream, from which they are listed, redriven and discarded; a nats-server
restart under load loses nothing, and the idempotent consumer records remove the duplicates."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from jetbridge.app import Platform, build_platform
from jetbridge.config import Settings
from jetbridge.events import registry
from jetbridge.events.consumers import first_time
from jetbridge.events.dlq_jetstream import JetStreamDeadLetters
from jetbridge.events.jetstream import SubjectScheme
from jetbridge.events.specs import RuleSpec
from support import aio
from support.events import keyed_entries, put_in_batches, put_rule, until
from support.nats import NatsServer, publish_acknowledged
from support.processes import process_env


class Effects:
    """A handler whose effect (a line in `done`) commits with its idempotent consumer record,
    as every consumer should: a redelivered event is recognised and skipped."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.calls: list[tuple[float, str]] = []
        self.done: list[tuple[str, str | None, int]] = []
        self.failing: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, payload: Any, context: Any) -> None:
        with self.lock:
            self.calls.append((time.monotonic(), context.event_id))
        if context.event_id in self.failing:
            raise RuntimeError("downstream system is unavailable")
        assert self.engine is not None
        with self.engine.begin() as conn:
            first = first_time(conn, consumer="effects", event_id=context.event_id)
        if first:  # committed: the effect is done
            with self.lock:
                detail = payload["detail"]
                self.done.append((context.event_id, detail.get("key"), detail["n"]))


def platform_for(
    postgres_url: str, nats_url: str, prefix: str, effects: Effects, **settings: Any
) -> Platform:
    platform = build_platform(
        Settings(
            database_url=postgres_url,
            nats_url=nats_url,
            nats_prefix=prefix,
            retry_base_seconds=0.2,
            retry_max_backoff_seconds=1.0,
            **{"delivery_lease_seconds": 3, **settings},
        ),
        handlers={"effects": effects},
    )
    platform.prepare()
    effects.engine = platform.engine
    return platform


def add_rule(platform: Platform, *, attempts: int = 185, dead_letter: bool = True) -> None:
    target = {
        "id": "effects",
        "kind": "python",
        "handler": "effects",
        "retry_policy": {"maximum_retry_attempts": attempts},
        "dead_letter": dead_letter,
    }
    put_rule(
        platform,
        {"name": "flights", "event_pattern": {"source": ["jetstream.test"]}, "targets": [target]},
    )


def put(platform: Platform, start: int, count: int, keys: int = 6) -> None:
    """Events n in [start, start+count) on flights n % keys; every fifth has no key."""
    flights = [None if n % 5 == 0 else f"LX.{n % keys}" for n in range(start, start + count)]
    put_in_batches(platform, keyed_entries("jetstream.test", flights, first=start))


async def listed_when(
    listing: Callable[[], list[dict[str, Any]]],
    check: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 60,
) -> list[dict[str, Any]]:
    """The dead letters once `check` holds (a letter is filed after its last attempt)."""
    deadline = time.monotonic() + timeout
    while not check(found := await asyncio.to_thread(listing)):
        if time.monotonic() > deadline:
            raise AssertionError(f"dead letters: {found}")
        await asyncio.sleep(0.1)
    return found


def check_once_each_in_key_order(effects: Effects, expected: int) -> None:
    ids = [event_id for event_id, _, _ in effects.done]
    assert sorted(ids) == sorted(f"ev-{n}" for n in range(expected)), "each effect once"
    by_key: dict[str, list[int]] = {}
    for _, key, n in effects.done:
        if key is not None:
            by_key.setdefault(key, []).append(n)
    for key, ns in by_key.items():
        assert ns == sorted(ns), f"flight {key}'s events in order"


async def pending_deliveries(nats_url: str, scheme: SubjectScheme) -> int:
    import nats

    client = await nats.connect(nats_url)
    try:
        info = await client.jetstream().stream_info(scheme.deliveries_stream())
        return int(info.state.messages)
    finally:
        await client.close()


def test_each_event_has_its_effect_once_and_one_flight_in_order(
    postgres_url: str, nats_url: str, nats_prefix: str
) -> None:
    effects = Effects()
    # The default lease: with the tests' 3 s, a loaded machine's slow lease renewals let
    # waiting messages' acknowledgement deadlines pass (a redelivery, allowed, not normal).
    platform = platform_for(postgres_url, nats_url, nats_prefix, effects, delivery_lease_seconds=30)
    add_rule(platform)
    scheme = platform.relay.scheme  # type: ignore[union-attr]

    async def scenario() -> None:
        await platform.start()
        try:
            await asyncio.to_thread(put, platform, 0, 300)
            await until(lambda: len(effects.done) >= 300, "300 effects")
            # An effect is committed a moment before its message is acknowledged.
            deadline = time.monotonic() + 60
            while left := await pending_deliveries(nats_url, scheme):
                assert time.monotonic() < deadline, f"{left} deliveries never acknowledged"
                await asyncio.sleep(0.1)
        finally:
            await platform.stop()

    aio.run(scenario())
    check_once_each_in_key_order(effects, 300)
    assert len(effects.calls) == 300, "no redelivery in the normal case"
    assert platform.backbone.log.pending() == 0, "nothing went through the database's queue"


def test_failures_are_retried_with_backoff_then_dead_lettered_and_redriven(
    postgres_url: str, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    effects = Effects()
    platform = platform_for(postgres_url, nats_url, nats_prefix, effects)
    add_rule(platform, attempts=3)
    effects.failing = {"ev-1", "ev-2"}
    stream = platform.backbone.dead_letters
    assert isinstance(stream, JetStreamDeadLetters)

    async def scenario() -> None:
        await platform.start()
        try:
            await asyncio.to_thread(put, platform, 0, 4, 1)
            await until(lambda: len(effects.calls) >= 8 and len(effects.done) == 2, "retries")
            letters = await listed_when(stream.list, lambda found: len(found) == 2)
            assert [letter["event"]["id"] for letter in letters] == ["ev-1", "ev-2"]
            assert {letter["attempts"] for letter in letters} == {4}
            assert all("downstream system is unavailable" in x["error"] for x in letters)
            assert all("retries exhausted" in x["error"] for x in letters)
            listing = {
                "other bus": {"bus": "other"},
                "a tenant's buses": {"within": {"some-tenant-bus"}},
                "after the first": {"after_id": letters[0]["id"]},
                "the rule's": {"bus": "default", "rule": "flights"},
            }
            found = {
                name: await asyncio.to_thread(lambda k=kwargs: stream.list(**k))
                for name, kwargs in listing.items()
            }
            assert found == {
                "other bus": [],
                "a tenant's buses": [],
                "after the first": letters[1:],
                "the rule's": letters,
            }

            # The dlq command lists them too, in its own process.
            listed = await asyncio.to_thread(cli_dlq, platform, nats_prefix, "list")
            assert [letter["id"] for letter in json.loads(listed)] == [x["id"] for x in letters]

            effects.failing = set()
            before = len(effects.calls)
            redriven = await asyncio.to_thread(stream.redrive, ids=[letters[0]["id"]])
            assert redriven == 1
            await until(lambda: len(effects.done) == 3, "the redriven letter delivered")
            assert effects.done[-1][0] == "ev-1"
            assert len(effects.calls) == before + 1, "to its own target, once"
            left = await asyncio.to_thread(stream.list)
            assert [x["id"] for x in left] == [letters[1]["id"]]
            discarded = await asyncio.to_thread(
                cli_dlq, platform, nats_prefix, "discard", "--id", str(letters[1]["id"])
            )
            assert json.loads(discarded) == {"discarded": 1}
            assert await asyncio.to_thread(stream.list) == []
        finally:
            await platform.stop()

    aio.run(scenario())
    # Backoff: the waits between one event's attempts grow (0.1-0.2 s, 0.2-0.4 s, 0.4-0.8 s).
    times = [at for at, event_id in effects.calls if event_id == "ev-2"]
    assert len(times) == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19 and gaps[2] >= 0.39, gaps
    # One flight's events in order: ev-2 waited for ev-1's retries, ev-3 for ev-2's.
    first = {event_id: at for at, event_id in reversed(effects.calls)}
    failed_ev1 = [at for at, event_id in effects.calls if event_id == "ev-1"][:4]
    assert first["ev-2"] > failed_ev1[-1]
    assert first["ev-3"] > times[-1]
    assert [e for e, _, _ in effects.done] == ["ev-0", "ev-3", "ev-1"]


def test_redriving_or_discarding_an_unknown_letter_names_it(
    postgres_url: str, nats_url: str, nats_prefix: str
) -> None:
    from jetbridge.errors import NotFound

    platform = platform_for(postgres_url, nats_url, nats_prefix, Effects())
    stream = platform.backbone.dead_letters
    assert isinstance(stream, JetStreamDeadLetters)
    with pytest.raises(NotFound, match=r"dead letter\(s\) \[41\]"):
        stream.redrive(ids=[41])
    with pytest.raises(NotFound, match="dead letter 41 does not exist"):
        stream.discard(letter_id=41)
    platform.engine.dispose()


def cli_dlq(platform: Platform, prefix: str, *args: str) -> str:
    env = process_env(
        database_url=platform.settings.database_url,
        nats_url=platform.settings.nats_url or "",
        nats_prefix=prefix,
    )
    return subprocess.run(
        [sys.executable, "-m", "jetbridge.cli", "dlq", *args],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    ).stdout.decode()


def test_a_nats_server_restart_under_load_loses_no_delivery(
    postgres_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    server = NatsServer(tmp_path / "jetstream")
    server.start()
    effects = Effects()
    try:
        platform = platform_for(postgres_url, server.url, nats_prefix, effects)
        add_rule(platform)
        total = 400

        async def scenario() -> None:
            await platform.start()
            try:
                writer = asyncio.create_task(asyncio.to_thread(put, platform, 0, total // 2))
                await until(lambda: len(effects.done) >= 40, "deliveries under way")
                await asyncio.to_thread(server.stop)
                await writer
                await asyncio.to_thread(put, platform, total // 2, total // 2)
                await asyncio.to_thread(server.start)
                await until(lambda: len(effects.done) >= total, "every event delivered", 180)
            finally:
                await platform.stop()

        aio.run(scenario())
        check_once_each_in_key_order(effects, total)
        # At least once: a call whose acknowledgement was lost came again, and was skipped;
        # only what was in flight when NATS went away (what each consumer's owner held).
        settings = platform.settings
        in_flight = settings.nats_delivery_shards * settings.nats_delivery_in_flight
        assert total <= len(effects.calls) <= total + in_flight
    finally:
        server.stop()


@pytest.mark.parametrize("queue", ["sqlite", "postgres", "jetstream"])
def test_the_dlq_routes_behave_alike_on_the_database_and_the_stream(
    queue: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """One contract for both dead-letter queues: the table and the JetStream stream."""
    from fastapi.testclient import TestClient

    from jetbridge.app import create_app
    from support import handlers
    from support.auth import as_operator, bearer, ensure_tenant

    handlers.reset()
    where: dict[str, Any] = {"database_url": f"sqlite:///{tmp_path / 'dlq.db'}"}
    if queue != "sqlite":
        where["database_url"] = request.getfixturevalue("postgres_url")
    if queue == "jetstream":
        where["nats_url"] = request.getfixturevalue("nats_url")
        where["nats_prefix"] = request.getfixturevalue("nats_prefix")
    settings = Settings(
        **where,
        retry_base_seconds=0.02,
        retry_max_backoff_seconds=0.1,
        delivery_poll_seconds=0.02,
    )
    with TestClient(create_app(settings, handlers=handlers.HANDLERS)) as client:
        as_operator(client)
        down = {
            "id": "down",
            "kind": "python",
            "handler": "always-fails",
            "retry_policy": {"maximum_retry_attempts": 1},
        }
        rule = {"name": "down", "event_pattern": {"source": ["airport.gates"]}, "targets": [down]}
        assert client.put("/api/buses/default/rules/down", json=rule).status_code == 200
        entries = [
            {"specversion": "1.0", "id": f"gate-{n}", "source": "airport.gates", "type": "t"}
            for n in range(3)
        ]
        assert (
            client.post("/api/buses/default/events", json={"entries": entries}).status_code == 200
        )
        deadline = time.monotonic() + 60
        while len(letters := client.get("/api/dlq").json()) < 3:
            assert time.monotonic() < deadline, letters
            time.sleep(0.1)
        # Without a partition key the events have no order between them.
        letters = sorted(letters, key=lambda letter: str(letter["event"]["id"]))
        assert [letter["event"]["id"] for letter in letters] == ["gate-0", "gate-1", "gate-2"]
        assert {letter["attempts"] for letter in letters} == {2}
        assert client.app.state.platform.backbone.dead_letters.depth() == {"default": 3}
        assert client.get("/api/dlq", params={"rule": "other"}).json() == []
        for hostile in ("*", ">", "default.>", "a b", "\u00e9"):  # never a subject wildcard
            assert client.get("/api/dlq", params={"bus": hostile}).json() == []
            assert client.get("/api/dlq", params={"rule": hostile}).json() == []

        # Another tenant's operations staff see none of the platform bus's letters.
        ensure_tenant(client.app, "LX")
        lx = bearer(client.app, roles=("operations",), tenant="LX")
        assert client.get("/api/dlq", headers=lx).json() == []
        first = letters[0]["id"]
        assert client.delete(f"/api/dlq/{first}", headers=lx).status_code == 404
        refused = client.post("/api/dlq/redrive", json={"ids": [first]}, headers=lx)
        assert refused.status_code == 404

        fixed = {**down, "handler": "record"}
        assert client.put("/api/buses/default/rules/down/targets", json=[fixed]).status_code == 200
        answer = client.post("/api/dlq/redrive", json={"ids": [first]})
        assert answer.json() == {"redriven": 1}
        deadline = time.monotonic() + 60
        while not handlers.RECEIVED["record"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert [event["id"] for event in handlers.RECEIVED["record"]] == ["gate-0"]
        assert client.delete(f"/api/dlq/{letters[1]['id']}").status_code == 204
        assert client.delete(f"/api/dlq/{letters[1]['id']}").status_code == 404
        assert [x["id"] for x in client.get("/api/dlq").json()] == [letters[2]["id"]]
        assert client.get("/api/dlq", params={"after_id": letters[2]["id"]}).json() == []
        missing = client.post("/api/dlq/redrive", json={"ids": [first]})
        assert missing.status_code == 404 and f"[{first}]" in missing.json()["message"]
        for hostile in ("-1", "99999999999999999999999", "x"):
            assert client.delete(f"/api/dlq/{hostile}").status_code == 422
        assert client.post("/api/dlq/redrive", json={}).json() == {"redriven": 1}
        assert client.get("/api/dlq").json() == []
        assert client.app.state.platform.backbone.dead_letters.depth() == {}


def test_a_replay_reads_the_bus_stream_by_event_time_and_archive_pattern(
    postgres_url: str, nats_url: str, nats_prefix: str
) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import func, select

    from jetbridge.events import archive
    from jetbridge.events.specs import ArchiveSpec, ReplaySpec
    from jetbridge.storage.schema import archive_events

    received: list[tuple[str, str | None]] = []

    def replayed(payload: Any) -> None:
        received.append((payload["id"], payload.get("replay-name")))

    effects = Effects()
    platform = build_platform(
        Settings(database_url=postgres_url, nats_url=nats_url, nats_prefix=nats_prefix),
        handlers={"effects": effects, "replayed": replayed},
    )
    platform.prepare()
    effects.engine = platform.engine
    spec = RuleSpec.model_validate(
        {
            "name": "replayed",
            "event_pattern": {"replay-name": ["again"]},
            "targets": [{"id": "t", "kind": "python", "handler": "replayed"}],
        }
    )
    begin = datetime.now(UTC) - timedelta(seconds=5)
    hour_ago = (begin - timedelta(hours=1)).isoformat()
    with platform.backbone.transaction() as conn:
        registry.put_rule(conn, bus="default", spec=spec, handlers=platform.backbone.handlers)
        archive.create_archive(
            conn,
            spec=ArchiveSpec.model_validate(
                {"name": "lx1", "bus": "default", "event_pattern": {"detail": {"key": ["LX.1"]}}}
            ),
        )
    put(platform, 0, 60)  # LX.1: 1, 7, 13, ... (n % 6 == 1, none a multiple of 5 but 25, 55)
    old = {
        "specversion": "1.0",
        "id": "old-1",
        "source": "jetstream.test",
        "type": "t",
        "time": hour_ago,
        "partitionkey": "LX.1",
        "data": {"n": 999, "key": "LX.1"},
    }
    platform.backbone.put_events(bus="default", entries=[old])
    expected = [f"ev-{n}" for n in range(60) if n % 6 == 1 and n % 5]

    async def scenario() -> None:
        await platform.start()
        try:
            await until(
                lambda: platform.relay is not None and platform.relay.relayed >= 61, "relay"
            )
            with platform.backbone.transaction() as conn:
                archive.start_replay(
                    conn,
                    spec=ReplaySpec.model_validate(
                        {
                            "name": "again",
                            "archive": "lx1",
                            "destination_bus": "default",
                            "start_time": begin.isoformat(),
                            "end_time": (datetime.now(UTC) + timedelta(seconds=1)).isoformat(),
                        }
                    ),
                )

            def state() -> str:
                with platform.backbone.reading() as conn:
                    return str(archive.get_replay(conn, name="again")["state"])

            await until(lambda: state() == "COMPLETED", "the replay completed")
            await until(lambda: len(received) >= len(expected), "replayed events delivered")
        finally:
            await platform.stop()

    aio.run(scenario())
    assert received == [(event_id, "again") for event_id in expected]
    with platform.backbone.reading() as conn:
        assert archive.get_replay(conn, name="again")["events_replayed"] == len(expected)
        stored = conn.execute(select(func.count()).select_from(archive_events)).scalar_one()
    assert stored == 0, "the stream is the archive: nothing copied into the database"


def test_messages_jetbridge_did_not_write_neither_stop_delivery_nor_the_dlq(
    postgres_url: str, nats_url: str, nats_prefix: str
) -> None:
    """Anyone allowed to publish on the platform's subjects could put garbage there."""
    import nats

    effects = Effects()
    platform = platform_for(postgres_url, nats_url, nats_prefix, effects)
    add_rule(platform)
    scheme = platform.relay.scheme  # type: ignore[union-attr]
    stream = platform.backbone.dead_letters
    assert isinstance(stream, JetStreamDeadLetters)

    async def scenario() -> None:
        await platform.start()
        client = await nats.connect(nats_url)
        try:
            jetstream = client.jetstream()
            await asyncio.to_thread(put, platform, 0, 1)  # the streams and consumers exist
            await until(lambda: len(effects.done) == 1, "the first event")
            for shard in range(scheme.shards):
                subject = scheme.delivery_subject("default", "flights", "effects", shard)
                await publish_acknowledged(
                    jetstream,
                    subject,
                    b"\xff",
                    headers={"Jetbridge-Since": "never", "Nats-Msg-Id": f"bytes-{shard}"},
                )
                await publish_acknowledged(
                    jetstream, subject, b"{not json", headers={"Nats-Msg-Id": f"text-{shard}"}
                )
            dead = scheme.dead_letter_subject("default", "flights", "effects")
            await publish_acknowledged(jetstream, dead, b"[1, 2]", headers={"Nats-Msg-Id": "list"})
            await asyncio.to_thread(put, platform, 1, 40)
            await until(lambda: len(effects.done) == 41, "the events after the garbage")
            letters = await listed_when(stream.list, lambda found: len(found) == scheme.shards)
            assert all("JSON" in letter["error"] or "json" in letter["error"] for letter in letters)
        finally:
            await client.close()
            await platform.stop()

    aio.run(scenario())
    check_once_each_in_key_order(effects, 41)


def test_an_event_older_than_the_targets_maximum_age_is_not_retried(
    postgres_url: str, nats_url: str, nats_prefix: str
) -> None:
    """The age counts from when the event was stored (`Jetbridge-Since`), not from when its
    delivery message reached the consumer: one failed attempt, then the dead-letter stream."""
    import nats

    from jetbridge.events.jetstream import delivery_headers

    effects = Effects()
    platform = platform_for(postgres_url, nats_url, nats_prefix, effects)
    add_rule(platform)
    effects.failing = {"ev-old", "ev-new"}
    scheme = platform.relay.scheme  # type: ignore[union-attr]
    stream = platform.backbone.dead_letters
    assert isinstance(stream, JetStreamDeadLetters)
    body = {"specversion": "1.0", "source": "jetstream.test", "type": "t", "data": {"n": 0}}

    async def scenario() -> None:
        await platform.start()
        client = await nats.connect(nats_url)
        try:
            await asyncio.to_thread(put, platform, 0, 1)  # the streams and consumers exist
            await until(lambda: len(effects.done) == 1, "the first event")
            jetstream = client.jetstream()
            for event_id, age in (("ev-old", 86_400 + 60), ("ev-new", 0)):
                await publish_acknowledged(
                    jetstream,
                    scheme.delivery_subject("default", "flights", "effects", 0),
                    json.dumps({**body, "id": event_id}).encode(),
                    headers=delivery_headers(
                        msg_id=event_id, seq=0, event_id=event_id, since=time.time() - age
                    ),
                )
            await until(lambda: sum(e == "ev-new" for _, e in effects.calls) >= 3, "retries")
            (letter,) = await listed_when(stream.list, lambda found: len(found) == 1)
            assert letter["event"]["id"] == "ev-old"
            assert letter["attempts"] == 1 and "(too old)" in letter["error"]
        finally:
            await client.close()
            await platform.stop()

    aio.run(scenario())
    assert [e for _, e in effects.calls].count("ev-old") == 1


def test_a_letter_between_removed_ones_is_still_listed(
    postgres_url: str, nats_url: str, nats_prefix: str
) -> None:
    """The letter left after the first and the last were removed (redriven, discarded) is
    listed, on any nats-server version."""
    from jetbridge.events.log import Delivery

    platform = platform_for(postgres_url, nats_url, nats_prefix, Effects())
    stream = platform.backbone.dead_letters
    assert isinstance(stream, JetStreamDeadLetters)

    def letter(n: int) -> Delivery:
        body = {"specversion": "1.0", "id": f"ev-{n}", "source": "jetstream.test", "type": "t"}
        return Delivery(n, n, "default", "flights", "effects", 0, time.time(), json.dumps(body))

    async def file_three() -> None:
        import nats

        client = await nats.connect(nats_url)
        try:
            for n in range(3):
                await stream.add(client.jetstream(), letter(n), error="down", now=time.time())
        finally:
            await client.close()

    stream.list()  # the streams exist
    aio.run(file_three())
    ids = [found["id"] for found in stream.list()]
    assert len(ids) == 3
    stream.discard(letter_id=ids[2])
    stream.discard(letter_id=ids[0])
    assert [found["id"] for found in stream.list()] == [ids[1]]
    assert [found["id"] for found in stream.list(after_id=ids[0])] == [ids[1]]
    assert stream.list(bus="default", rule="flights")[0]["event"]["id"] == "ev-1"
    platform.engine.dispose()
