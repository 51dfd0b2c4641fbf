"""Distributed mode: events leave PostgreSQL through the outbox into JetStream, each once, one
partition key's events in commit order, through a relay crash and a nats-server restart."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from jetbridge.app import Platform, build_platform
from jetbridge.config import Settings
from jetbridge.events.jetstream import JetStreamRelay, SubjectScheme, token
from jetbridge.storage.schema import jetstream_outbox
from support import aio
from support.nats import NatsServer


def platform_for(postgres_url: str, nats_url: str, prefix: str) -> Platform:
    platform = build_platform(
        Settings(database_url=postgres_url, nats_url=nats_url, nats_prefix=prefix)
    )
    platform.prepare()
    return platform


def put(platform: Platform, start: int, count: int, keys: int = 5) -> None:
    """Events n in [start, start+count): flights k = n % keys, every seventh without a key."""
    entries = []
    for n in range(start, start + count):
        entry: dict[str, Any] = {
            "specversion": "1.0",
            "id": f"ev-{n}",
            "source": "outbox.test",
            "type": "t",
            "data": {"n": n},
        }
        if n % 7:
            entry["partitionkey"] = f"LX.{n % keys}"  # a dot: escaped in the subject
        entries.append(entry)
    for first in range(0, len(entries), 50):
        platform.backbone.put_events(bus="default", entries=entries[first : first + 50])


def outbox_size(platform: Platform) -> int:
    with platform.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(jetstream_outbox)).scalar_one())


async def stream_messages(nats_url: str, scheme: SubjectScheme) -> list[tuple[str, int, int]]:
    """(subject, log position, n) of every message in the default bus's stream, in order."""
    import nats

    client = await nats.connect(nats_url)
    try:
        jetstream = client.jetstream()
        info = await jetstream.stream_info(scheme.stream("default"))
        found = []
        for position in range(info.state.first_seq, info.state.last_seq + 1):
            message = await jetstream.get_msg(scheme.stream("default"), position)
            assert message.headers is not None
            assert message.headers["Nats-Msg-Id"] == message.headers["Jetbridge-Seq"]
            body = json.loads(message.data or b"")
            found.append(
                (message.subject, int(message.headers["Jetbridge-Seq"]), body["data"]["n"])
            )
        return found
    finally:
        await client.close()


def check_each_once_in_order(
    found: list[tuple[str, int, int]], expected: int, prefix: str, writer_size: int = 100
) -> None:
    """Each event once, on its key's subject; one key's events committed one after the other
    (by one writer) in that order. Concurrent writers' transactions have no order between
    them (a flight's are serialised by its row lock, so they do)."""
    assert sorted(n for _, _, n in found) == list(range(expected)), "each event exactly once"
    by_lane: dict[tuple[str, int], list[int]] = defaultdict(list)
    for subject, _, n in found:
        key = "_" if n % 7 == 0 else token(f"LX.{n % 5}")
        assert subject == f"{prefix}.events.default.{key}"
        by_lane[subject, n // writer_size].append(n)
    for ns in by_lane.values():
        assert ns == sorted(ns), "one partition key's events in commit order"


async def relay_until(
    relay: JetStreamRelay, done: Callable[[], bool], timeout: float = 120
) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        for _ in range(int(timeout * 50)):
            if done():
                return
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        raise AssertionError(f"the relay moved {relay.relayed} events")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def test_the_outbox_reaches_jetstream_once_in_order_even_after_a_relay_crash(
    postgres_url: str, nats_url: str, nats_prefix: str
) -> None:
    platform = platform_for(postgres_url, nats_url, nats_prefix)
    assert platform.relay is not None
    scheme = platform.relay.scheme
    writers = [threading.Thread(target=put, args=(platform, k * 100, 100)) for k in range(3)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert outbox_size(platform) == 300
    aio.run(relay_until(platform.relay, lambda: outbox_size(platform) == 0))
    found = aio.run(stream_messages(nats_url, scheme))
    check_each_once_in_order(found, 300, nats_prefix)

    # A relay that died after JetStream's acknowledgements but before deleting the rows: the
    # next one publishes them again, and JetStream drops the copies by Nats-Msg-Id.
    with platform.engine.begin() as conn:
        conn.execute(insert(jetstream_outbox), [{"event_seq": seq} for _, seq, _ in found[:80]])
    relay = JetStreamRelay(platform.engine, nats_url, scheme=scheme)
    aio.run(relay_until(relay, lambda: outbox_size(platform) == 0))
    assert relay.relayed == 80
    assert aio.run(stream_messages(nats_url, scheme)) == found
    platform.engine.dispose()


def test_a_nats_server_restart_under_load_loses_nothing_and_duplicates_nothing(
    postgres_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    server = NatsServer(tmp_path / "jetstream")
    server.start()
    try:
        platform = platform_for(postgres_url, server.url, nats_prefix)
        assert platform.relay is not None
        relay = platform.relay
        total = 600

        async def scenario() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(relay.run(stop))
            writer = asyncio.create_task(asyncio.to_thread(put, platform, 0, total // 2))
            await until(lambda: relay.relayed >= 50)
            await asyncio.to_thread(server.stop)  # with writes and relaying under way
            await writer
            # Writes go on while NATS is away: they wait in the outbox.
            await asyncio.to_thread(put, platform, total // 2, total // 2)
            assert outbox_size(platform) >= total // 2
            await asyncio.to_thread(server.start)
            await until(lambda: outbox_size(platform) == 0 and relay.relayed >= total)
            stop.set()
            await asyncio.wait_for(task, 30)

        aio.run(scenario())
        found = aio.run(stream_messages(server.url, relay.scheme))
        check_each_once_in_order(found, total, nats_prefix, writer_size=total)
        platform.engine.dispose()
    finally:
        server.stop()


async def until(check: Callable[[], bool], timeout: float = 120) -> None:
    for _ in range(int(timeout * 50)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("gave up waiting")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("default", "default"),
        ("LX.318", "LX_2E318"),
        ("a_b", "a_5Fb"),
        ("", "_"),
        ("é*>", "_C3_A9_2A_3E"),
    ],
)
def test_subject_tokens_hold_any_name(value: str, expected: str) -> None:
    assert token(value) == expected


def test_api_processes_are_woken_by_the_event_subjects(nats_url: str, nats_prefix: str) -> None:
    """The push path: a message on a bus's subjects wakes the live readers, once connected."""
    import nats

    from jetbridge.events.jetstream import NatsWakeups

    scheme = SubjectScheme(nats_prefix)
    woken: list[int] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        wakeups = NatsWakeups(nats_url, scheme, lambda: woken.append(1))
        task = asyncio.create_task(wakeups.run(stop))
        await until(lambda: wakeups.listening)
        assert woken, "connecting wakes the readers once: commits meanwhile went unannounced"
        before = len(woken)
        client = await nats.connect(nats_url)
        await client.publish(scheme.subject("ops", "LX.318"), b"{}")
        await client.publish(f"{nats_prefix}.other.ops", b"{}")  # not an event subject
        await client.flush()
        await until(lambda: wakeups.received == 1)
        await client.close()
        assert len(woken) == before + 1
        stop.set()
        await asyncio.wait_for(task, 10)
        assert not wakeups.listening

    aio.run(scenario())


def test_a_worker_keeps_nats_for_readiness_without_taking_every_event_message(
    nats_url: str, nats_prefix: str
) -> None:
    """Without `subscribe` (a worker: PostgreSQL's notifications wake its duties) no event
    message reaches the process, and it does not claim to be signalled by NATS."""
    import nats

    from jetbridge.events.jetstream import NatsWakeups

    scheme = SubjectScheme(nats_prefix)
    woken: list[str] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        worker = NatsWakeups(nats_url, scheme, lambda: woken.append("worker"), subscribe=False)
        api = NatsWakeups(nats_url, scheme, lambda: woken.append("api"))
        tasks = [asyncio.create_task(w.run(stop)) for w in (worker, api)]
        await until(lambda: api.listening)
        assert await asyncio.to_thread(worker.unready) is None  # connected, JetStream answers
        client = await nats.connect(nats_url)
        await client.publish(scheme.subject("ops", "LX.318"), b"{}")
        await client.flush()
        await until(lambda: api.received == 1)
        await client.close()
        assert worker.received == 0 and not worker.listening
        assert "worker" not in woken
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)

    aio.run(scenario())


def test_without_nats_nothing_waits_in_the_outbox(database_url: str) -> None:
    platform = build_platform(Settings(database_url=database_url, run_workers=False))
    platform.prepare()
    assert platform.relay is None and platform.nats_wakeups is None
    put(platform, 0, 20)
    assert outbox_size(platform) == 0
    platform.engine.dispose()
