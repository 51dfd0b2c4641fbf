"""A slow target does not slow the others: the worker claims whenever a slot is free, and one
target holds at most its share of the slots."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from jetbridge.app import build_platform
from jetbridge.config import Settings
from support import aio
from support.events import put_rule

EVENTS = 40


def test_a_slow_target_leaves_the_other_targets_their_pace(sqlite_url: str) -> None:
    slow: list[str] = []
    fast: list[str] = []
    lock = threading.Lock()

    async def slow_handler(payload: Any) -> None:
        await asyncio.sleep(0.5)
        with lock:
            slow.append(payload["id"])

    def fast_handler(payload: Any) -> None:
        with lock:
            fast.append(payload["id"])

    platform = build_platform(
        Settings(
            database_url=sqlite_url,
            run_workers=False,
            delivery_concurrency=8,
            delivery_target_concurrency=6,
            delivery_batch=8,
        ),
        handlers={"slow-target": slow_handler, "fast-target": fast_handler},
    )
    platform.prepare()
    put_rule(
        platform,
        {
            "name": "both",
            "event_pattern": {"source": ["slow.test"]},
            "targets": [
                {"id": "slow", "kind": "python", "handler": "slow-target"},
                {"id": "fast", "kind": "python", "handler": "fast-target"},
            ],
        },
    )
    entries = [
        {"specversion": "1.0", "id": f"ev-{n}", "source": "slow.test", "type": "t"}
        for n in range(EVENTS)
    ]
    platform.backbone.put_events(bus="default", entries=entries)

    async def scenario() -> tuple[int, int]:
        stop = asyncio.Event()
        task = asyncio.create_task(platform.worker.run(stop))
        deadline = time.monotonic() + 120
        while len(fast) < EVENTS and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        slow_then = len(slow)
        while len(slow) < EVENTS and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 30)
        return slow_then, len(slow)

    slow_when_fast_done, slow_at_end = aio.run(scenario())
    assert sorted(fast) == sorted(e["id"] for e in entries)
    # Six slow deliveries at a time, half a second each: 40 take 3.5 s or more. The fast target
    # finished while most slow ones were still to come, instead of waiting batch by batch.
    assert slow_when_fast_done <= EVENTS // 2, slow_when_fast_done
    assert slow_at_end == EVENTS
    assert platform.backbone.log.pending() == 0
    platform.engine.dispose()
