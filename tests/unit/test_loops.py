"""Idle polling loops sharing a turn step one at a time: a wake-up moves one loop, not all."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from jetbridge.loops import poll_until_stopped
from support import aio

LOOPS = 4


async def _until(predicate: Callable[[], bool], deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        await asyncio.sleep(0.01)


def test_idle_loops_sharing_a_turn_step_once_per_wakeup() -> None:
    steps = 0
    lock = threading.Lock()

    def step() -> bool:
        nonlocal steps
        with lock:
            steps += 1
        return False  # always idle

    async def scenario() -> int:
        stop, wakeup, turn = asyncio.Event(), asyncio.Event(), asyncio.Lock()
        loops = [
            asyncio.create_task(
                # An interval far beyond the test: only wake-ups make an idle loop step again.
                poll_until_stopped(step, stop, interval=600, name="test", wakeup=wakeup, turn=turn)
            )
            for _ in range(LOOPS)
        ]
        await _until(lambda: steps == LOOPS and turn.locked())  # each stepped once, now idle
        wakeup.set()
        await _until(lambda: steps > LOOPS)
        # Every loop is idle again before stopping: a loop woken as well would have stepped.
        await _until(lambda: turn.locked() and not wakeup.is_set())
        stop.set()
        await asyncio.wait_for(asyncio.gather(*loops), timeout=30)
        return steps

    assert aio.run(scenario()) == LOOPS + 1
