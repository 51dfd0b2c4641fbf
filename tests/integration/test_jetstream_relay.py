"""The outbox relay publishes many partition keys at once: one key's events reach the bus stream
and the deliveries stream in commit order; a key whose publish fails keeps its unacknowledged
rows for the next pass, while the other keys carry on, and nothing is stored twice."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest
from sqlalchemy import func, select

from jetbridge.app import Platform, build_platform
from jetbridge.config import Settings
from jetbridge.events.jetstream import JetStreamRelay, SubjectScheme
from jetbridge.storage.schema import jetstream_outbox
from support import aio
from support.events import keyed_entries, put_in_batches, put_rule


def platform_with_a_rule(postgres_url: str, nats_url: str, prefix: str) -> Platform:
    """A platform whose one rule has two targets: each event carries two delivery messages."""
    platform = build_platform(
        Settings(database_url=postgres_url, nats_url=nats_url, nats_prefix=prefix),
        handlers={"effects": lambda payload, context: None},
    )
    platform.prepare()
    put_rule(
        platform,
        {
            "name": "flights",
            "event_pattern": {"source": ["relay.test"]},
            "targets": [
                {"id": "first", "kind": "python", "handler": "effects"},
                {"id": "second", "kind": "python", "handler": "effects"},
            ],
        },
    )
    return platform


def put(platform: Platform, keys: list[str | None]) -> None:
    """Event n on partition key keys[n], committed in this order by one writer."""
    put_in_batches(platform, keyed_entries("relay.test", keys), size=100)


def outbox_size(platform: Platform) -> int:
    with platform.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(jetstream_outbox)).scalar_one())


async def stored(nats_url: str, stream: str) -> list[tuple[str, str, int]]:
    """(subject, Nats-Msg-Id, n) of every message in the stream, in stream order."""
    import nats

    client = await nats.connect(nats_url)
    try:
        jetstream = client.jetstream()
        info = await jetstream.stream_info(stream)
        found = []
        for position in range(info.state.first_seq, info.state.last_seq + 1):
            message = await jetstream.get_msg(stream, position)
            assert message.headers is not None
            body = json.loads(message.data or b"")
            found.append((message.subject, message.headers["Nats-Msg-Id"], body["data"]["n"]))
        return found
    finally:
        await client.close()


async def relay_once(relay: JetStreamRelay) -> int:
    import nats

    client = await nats.connect(relay.nats_url)
    try:
        return await relay.relay_once(client.jetstream())
    finally:
        await client.close()


def per_key(found: list[tuple[str, str, int]], keys: list[str | None]) -> dict[Any, list[int]]:
    """The event numbers of each partition key, in the order they were stored."""
    lanes: dict[Any, list[int]] = defaultdict(list)
    for _, _, n in found:
        lanes[keys[n]].append(n)
    return lanes


def check_once_each_in_key_order(
    found: list[tuple[str, str, int]], keys: list[str | None], copies: int
) -> None:
    msg_ids = [msg_id for _, msg_id, _ in found]
    assert len(msg_ids) == len(set(msg_ids)), "no message stored twice"
    assert sorted(n for _, _, n in found) == sorted(list(range(len(keys))) * copies)
    for key, ns in per_key(found, keys).items():
        assert ns == sorted(ns), f"partition key {key}'s events out of commit order"


def test_many_keys_in_one_batch_keep_each_keys_order_in_both_streams(
    postgres_url: str, nats_url: str, nats_prefix: str
) -> None:
    platform = platform_with_a_rule(postgres_url, nats_url, nats_prefix)
    scheme = SubjectScheme(nats_prefix)
    keys: list[str | None] = [None if n % 11 == 0 else f"LX.{n % 40}" for n in range(240)]
    put(platform, keys)
    relay = JetStreamRelay(platform.engine, nats_url, scheme=scheme, batch=256)
    assert aio.run(relay_once(relay)) == 240
    assert outbox_size(platform) == 0 and relay.relayed == 240

    events = aio.run(stored(nats_url, scheme.stream("default")))
    check_once_each_in_key_order(events, keys, copies=1)
    deliveries = aio.run(stored(nats_url, scheme.deliveries_stream()))
    check_once_each_in_key_order(deliveries, keys, copies=2)
    for target in ("first", "second"):
        mine = [entry for entry in deliveries if f".{target}." in entry[0]]
        check_once_each_in_key_order(mine, keys, copies=1)
    platform.engine.dispose()


def test_a_failing_key_keeps_its_unacknowledged_rows_and_the_others_carry_on(
    postgres_url: str, nats_url: str, nats_prefix: str
) -> None:
    """The bus stream takes at most three messages per subject (new ones refused): the key
    with eight events fails at its fourth, and its later events are not even tried."""
    from nats.js.api import DiscardPolicy, StreamConfig
    from nats.js.errors import APIError

    platform = platform_with_a_rule(postgres_url, nats_url, nats_prefix)
    scheme = SubjectScheme(nats_prefix)
    config = StreamConfig(
        name=scheme.stream("default"),
        subjects=[scheme.bus_subjects("default")],
        duplicate_window=600.0,
        max_msgs_per_subject=3,
        discard=DiscardPolicy.NEW,
        discard_new_per_subject=True,
    )

    async def limit(maximum: int) -> None:
        import nats

        client = await nats.connect(nats_url)
        try:
            jetstream = client.jetstream()
            config.max_msgs_per_subject = maximum
            if maximum > 0:
                await jetstream.add_stream(config)
            else:
                config.discard_new_per_subject = False
                await jetstream.update_stream(config)
        finally:
            await client.close()

    aio.run(limit(3))
    # Key F's eight events, the other keys' three each after F's fourth (the failing one).
    keys: list[str | None] = []
    for round_ in range(8):
        keys += ["K.F"] + [f"K.{k}" for k in "ABCDEGHIJ" if round_ >= 5]
    put(platform, keys)
    failing = [n for n, key in enumerate(keys) if key == "K.F"]
    relay = JetStreamRelay(platform.engine, nats_url, scheme=scheme)

    with pytest.raises(APIError, match="per subject"):
        aio.run(relay_once(relay))
    assert relay.relayed == len(keys) - 5 and outbox_size(platform) == 5
    events = aio.run(stored(nats_url, scheme.stream("default")))
    assert sorted(n for _, _, n in events) == sorted(set(range(len(keys))) - set(failing[3:]))
    deliveries = aio.run(stored(nats_url, scheme.deliveries_stream()))
    tried = {n for _, _, n in deliveries if keys[n] == "K.F"}
    assert tried <= set(failing[:4]), "events after the failed one were not published"

    aio.run(limit(-1))
    assert aio.run(relay_once(relay)) == 5
    assert outbox_size(platform) == 0 and relay.relayed == len(keys)
    check_once_each_in_key_order(aio.run(stored(nats_url, scheme.stream("default"))), keys, 1)
    check_once_each_in_key_order(aio.run(stored(nats_url, scheme.deliveries_stream())), keys, 2)
    platform.engine.dispose()
