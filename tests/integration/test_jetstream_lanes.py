"""The owner of a delivery consumer runs many partition keys at once, one key's events in
order: a slow event holds back only its own key, and a slow target never the other targets."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any

from jetbridge.app import Platform, build_platform
from jetbridge.config import Settings
from support import aio
from support.events import keyed_entries, put_in_batches, put_rule, until


class Calls:
    """A handler recording when each call began and ended; calls of one key must never
    overlap, and those of `blocked` keys wait for `gate`."""

    def __init__(self, *, blocked: frozenset[str] = frozenset(), pause: float = 0.0) -> None:
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.blocked = blocked
        self.pause = pause
        self.spans: list[tuple[float, float, str | None, int]] = []
        self.running: dict[str | None, int] = {}
        self.started: list[int] = []
        self.overlaps_in_a_key = 0

    def __call__(self, payload: Any) -> None:
        detail = payload["detail"]
        key, n = detail["key"], detail["n"]
        began = time.monotonic()
        with self.lock:
            self.started.append(n)
            if self.running.get(key):
                self.overlaps_in_a_key += 1
            self.running[key] = self.running.get(key, 0) + 1
        try:
            if key in self.blocked:
                self.gate.wait(timeout=120)
            elif self.pause:
                time.sleep(random.uniform(0, self.pause))
        finally:
            with self.lock:
                self.running[key] -= 1
                self.spans.append((began, time.monotonic(), key, n))

    def done(self, key: str | None = None, *, other_than: str | None = None) -> list[int]:
        with self.lock:
            return [
                n
                for _, _, k, n in sorted(self.spans, key=lambda span: span[1])
                if (key is None or k == key) and (other_than is None or k != other_than)
            ]

    def most_at_once(self) -> int:
        """The most calls that were running at one moment."""
        edges = sorted(
            [(began, 1) for began, _, _, _ in self.spans]
            + [(ended, -1) for _, ended, _, _ in self.spans]
        )
        most = running = 0
        for _, step in edges:
            running += step
            most = max(most, running)
        return most


def platform_with(
    postgres_url: str, nats_url: str, prefix: str, handlers: dict[str, Calls], **settings: Any
) -> Platform:
    platform = build_platform(
        Settings(
            database_url=postgres_url,
            nats_url=nats_url,
            nats_prefix=prefix,
            delivery_lease_seconds=3,
            **settings,
        ),
        handlers=dict(handlers),
    )
    platform.prepare()
    targets = [{"id": name, "kind": "python", "handler": name} for name in handlers]
    put_rule(
        platform,
        {"name": "flights", "event_pattern": {"source": ["lanes.test"]}, "targets": targets},
    )
    return platform


def put(platform: Platform, keys: list[str]) -> None:
    """Event n on partition key keys[n]."""
    put_in_batches(platform, keyed_entries("lanes.test", keys))


def in_order_per_key(calls: Calls, keys: list[str]) -> None:
    for key in set(keys):
        expected = [n for n, k in enumerate(keys) if k == key]
        assert calls.done(key) == expected, f"{key}'s events once each, in order"
    assert calls.overlaps_in_a_key == 0, "one key's events never run at the same time"


def test_a_slow_event_holds_back_only_its_own_partition_key(
    postgres_url: str, nats_url: str, nats_prefix: str
) -> None:
    """All keys on one consumer (one shard): the others go on while one key's event waits."""
    keys = ["LX.slow" if n % 8 == 0 else f"LX.{n % 5}" for n in range(120)]
    calls = Calls(blocked=frozenset({"LX.slow"}))
    platform = platform_with(
        postgres_url, nats_url, nats_prefix, {"lanes": calls}, nats_delivery_shards=1
    )
    others = [n for n, key in enumerate(keys) if key != "LX.slow"]

    async def scenario() -> None:
        await platform.start()
        try:
            await asyncio.to_thread(put, platform, keys)
            await until(lambda: len(calls.done(other_than="LX.slow")) == len(others), "others")
            # Every other key's events ran while the slow key's first event was running.
            assert not calls.gate.is_set() and calls.done("LX.slow") == []
            assert [n for n in calls.started if keys[n] == "LX.slow"] == [0]
            calls.gate.set()
            await until(lambda: len(calls.done()) == len(keys), "the slow key's events")
        finally:
            calls.gate.set()
            await platform.stop()

    aio.run(scenario())
    in_order_per_key(calls, keys)


def test_several_events_in_flight_keep_each_keys_order(
    postgres_url: str, nats_url: str, nats_prefix: str
) -> None:
    """A backlog on one consumer: handlers of varying speed, several keys at once, each key's
    events one after the other in stream order."""
    keys = [f"LX.{n % 6}" for n in range(240)]
    calls = Calls(pause=0.02)
    platform = platform_with(
        postgres_url,
        nats_url,
        nats_prefix,
        {"lanes": calls},
        nats_delivery_shards=1,
        nats_delivery_in_flight=16,
    )
    put(platform, keys)  # waiting in the outbox: the consumer meets a backlog

    async def scenario() -> None:
        await platform.start()
        try:
            await until(lambda: len(calls.done()) == len(keys), "every event")
        finally:
            await platform.stop()

    aio.run(scenario())
    in_order_per_key(calls, keys)
    assert calls.most_at_once() > 1, "different keys' events ran at the same time"


def test_a_slow_target_does_not_hold_back_another(
    postgres_url: str, nats_url: str, nats_prefix: str
) -> None:
    keys = [f"LX.{n % 10}" for n in range(60)]
    slow = Calls(blocked=frozenset(keys))
    fast = Calls()
    platform = platform_with(postgres_url, nats_url, nats_prefix, {"slow": slow, "fast": fast})

    async def scenario() -> None:
        await platform.start()
        try:
            await asyncio.to_thread(put, platform, keys)
            await until(lambda: len(fast.done()) == len(keys), "the fast target's events")
            # The slow target was holding events all along, none of them finished.
            assert slow.started and slow.done() == [] and not slow.gate.is_set()
            slow.gate.set()
            await until(lambda: len(slow.done()) == len(keys), "the slow target's events")
        finally:
            slow.gate.set()
            await platform.stop()

    aio.run(scenario())
    in_order_per_key(fast, keys)
    in_order_per_key(slow, keys)
