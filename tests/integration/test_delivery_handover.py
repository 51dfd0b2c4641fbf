"""Deliveries handed over at commit (embedded default, SQLite): a put's deliveries are queued
already leased to this process's running worker and started when the put commits, without a
claim; a lane's later deliveries, those the worker has no slot for, and those of a transaction
that did not commit take the usual way."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from jetbridge.app import Platform, build_platform
from jetbridge.config import Settings
from jetbridge.errors import NotFound
from jetbridge.events.delivery import DeliveryWorker
from jetbridge.events.envelope import cloud_event_from_dict
from support import aio
from support.events import keyed_entries, put_rule, until

RULE = {
    "name": "handed",
    "event_pattern": {"source": ["handover.test"]},
    "targets": [{"id": "h", "kind": "python", "handler": "record"}],
}


def _platform(url: str, handler: Callable[..., Any], **settings: Any) -> Platform:
    platform = build_platform(
        Settings(database_url=url, run_workers=False, **settings), handlers={"record": handler}
    )
    platform.prepare()
    put_rule(platform, RULE)
    return platform


async def _running(platform: Platform) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(platform.worker.run(stop))
    await until(lambda: platform.backbone.handovers() is not None, "the worker to run")
    return stop, task


def _slots_held(platform: Platform) -> int:
    return sum(platform.worker._held.values())


def test_a_put_reaches_the_handler_without_a_claim(sqlite_url: str) -> None:
    seen: list[str] = []
    platform = _platform(sqlite_url, lambda payload: seen.append(payload["id"]))

    async def scenario() -> None:
        stop, task = await _running(platform)
        for n, entry in enumerate(keyed_entries("handover.test", [f"K{n}" for n in range(20)])):
            await asyncio.to_thread(platform.backbone.put_events, bus="default", entries=[entry])
            await until(lambda n=n: len(seen) == n + 1, f"event {n}")
        stop.set()
        await asyncio.wait_for(task, 30)

    aio.run(scenario())
    assert seen == [f"ev-{n}" for n in range(20)]
    assert platform.worker.stats["handed_over"] == 20
    assert platform.worker.stats["claimed"] == 0
    assert platform.backbone.log.pending() == 0
    assert _slots_held(platform) == 0


def test_a_lanes_later_events_wait_for_its_first_and_keep_their_order(sqlite_url: str) -> None:
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    async def slow(payload: Any) -> None:
        await asyncio.sleep(0.02)
        with lock:
            seen.append((payload["detail"]["key"], payload["id"]))

    platform = _platform(sqlite_url, slow)
    keys = ["A", "B", "A", "A", "B", "C", "A", "B"] * 3
    entries = keyed_entries("handover.test", keys)

    async def scenario() -> None:
        stop, task = await _running(platform)
        # Concurrent puts through the intake: grouped into shared transactions.
        events = [cloud_event_from_dict(entry) for entry in entries]
        await asyncio.gather(
            *(
                platform.backbone.intake.put(bus="default", events=[event], may_act_for=_anyone)
                for event in events
            )
        )
        await until(lambda: len(seen) == len(entries), "every event")
        # A batch of one put: only each lane's first can be handed over.
        more = keyed_entries("handover.test", ["D", "D", "E"], first=len(entries))
        await asyncio.to_thread(platform.backbone.put_events, bus="default", entries=more)
        await until(lambda: len(seen) == len(entries) + 3, "the batch")
        stop.set()
        await asyncio.wait_for(task, 30)

    aio.run(scenario())
    for key in "ABCDE":
        order = [event_id for lane, event_id in seen if lane == key]
        assert order == sorted(order, key=lambda event_id: int(event_id[3:])), (key, order)
    stats = platform.worker.stats
    assert stats["handed_over"] >= 5  # at least each lane's first
    assert stats["claimed"] >= 1  # later ones of a busy lane were claimed after it
    assert stats["handed_over"] + stats["claimed"] == len(entries) + 3
    assert platform.backbone.log.pending() == 0
    assert _slots_held(platform) == 0


def test_deliveries_beyond_the_workers_free_slots_are_claimed_later(sqlite_url: str) -> None:
    release = threading.Event()
    seen: list[str] = []

    def blocked(payload: Any) -> None:
        release.wait(60)
        seen.append(payload["id"])

    platform = _platform(sqlite_url, blocked, delivery_concurrency=2, delivery_target_concurrency=2)

    async def scenario() -> tuple[int, int]:
        stop, task = await _running(platform)
        entries = keyed_entries("handover.test", [f"K{n}" for n in range(5)])
        for entry in entries:
            await asyncio.to_thread(platform.backbone.put_events, bus="default", entries=[entry])
        await until(lambda: platform.worker.stats["handed_over"] == 2, "two handed over")
        handed_while_full, held_while_full = (
            platform.worker.stats["handed_over"],
            _slots_held(platform),
        )
        release.set()
        await until(lambda: len(seen) == 5, "all five")
        stop.set()
        await asyncio.wait_for(task, 30)
        return handed_while_full, held_while_full

    handed, held = aio.run(scenario())
    assert (handed, held) == (2, 2)  # the worker's two slots, no more
    assert sorted(seen) == [f"ev-{n}" for n in range(5)]
    assert platform.worker.stats["claimed"] == 3
    assert platform.backbone.log.pending() == 0
    assert _slots_held(platform) == 0


def test_a_refused_request_gives_back_the_slots_its_transaction_reserved(sqlite_url: str) -> None:
    seen: list[str] = []
    platform = _platform(sqlite_url, lambda payload: seen.append(payload["id"]))
    entries = keyed_entries("handover.test", [f"K{n}" for n in range(6)])

    async def scenario() -> list[Any]:
        stop, task = await _running(platform)
        events = [cloud_event_from_dict(entry) for entry in entries]
        puts = [
            platform.backbone.intake.put(bus="default", events=[event], may_act_for=_anyone)
            for event in events
        ]
        # Between them, a put on a bus that does not exist: the first transaction (with the
        # hand-over) is rolled back and the requests written again one by one.
        puts.insert(
            3, platform.backbone.intake.put(bus="nowhere", events=events[:1], may_act_for=_anyone)
        )
        outcomes = await asyncio.gather(*puts, return_exceptions=True)
        await until(lambda: len(seen) == 6, "the six accepted events")
        stop.set()
        await asyncio.wait_for(task, 30)
        return outcomes

    outcomes = aio.run(scenario())
    assert isinstance(outcomes[3], NotFound)
    assert sorted(seen) == sorted(entry["id"] for entry in entries)
    assert platform.backbone.log.pending() == 0
    assert _slots_held(platform) == 0


def test_a_handed_over_delivery_never_started_is_claimed_when_its_lease_ends(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process stopping between the commit and the start: the lease taken at enqueue runs
    out and the delivery is claimed again (at least once, not lost)."""
    seen: list[str] = []
    platform = _platform(
        sqlite_url, lambda payload: seen.append(payload["id"]), delivery_lease_seconds=1.0
    )
    worker = platform.worker
    dropped: list[Any] = []

    def lost(self: DeliveryWorker, taken: Any, routes: Any) -> None:
        # As if the process died right after the commit.
        dropped.extend(taken)
        self.unreserve([(d.bus, d.rule, d.target_id) for d in taken])

    async def scenario() -> None:
        stop, task = await _running(platform)
        monkeypatch.setattr(DeliveryWorker, "take_over", lost)
        (entry,) = keyed_entries("handover.test", ["K"])
        await asyncio.to_thread(platform.backbone.put_events, bus="default", entries=[entry])
        assert len(dropped) == 1 and seen == []
        await until(lambda: seen == ["ev-0"], "the delivery after its lease")
        stop.set()
        await asyncio.wait_for(task, 30)

    aio.run(scenario())
    assert worker.stats["claimed"] == 1
    assert platform.backbone.log.pending() == 0


def test_postgresql_queues_are_claimed_not_handed_over(postgres_url: str) -> None:
    """Transactions on PostgreSQL do not take turns: a lane's first cannot be told at enqueue,
    so every delivery is claimed."""
    seen: list[str] = []
    platform = _platform(postgres_url, lambda payload: seen.append(payload["id"]))

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(platform.worker.run(stop))
        await until(lambda: platform.worker._running, "the worker to run")
        assert platform.backbone.handovers() is None
        entries = keyed_entries("handover.test", ["A", "B", "A"])
        await asyncio.to_thread(platform.backbone.put_events, bus="default", entries=entries)
        await until(lambda: len(seen) == 3, "three events")
        stop.set()
        await asyncio.wait_for(task, 30)

    aio.run(scenario())
    assert platform.worker.stats["handed_over"] == 0
    assert platform.worker.stats["claimed"] == 3


def _anyone(owner: str | None) -> bool:
    return True
