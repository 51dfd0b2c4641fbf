"""The one polling loop every background consumer uses: step, and wait only when idle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


async def poll_until_stopped(
    step: Callable[[], object], stop: asyncio.Event, *, interval: float, name: str
) -> None:
    """Run `step` in a thread repeatedly; after an idle (falsy) or failed step, wait `interval`."""
    while not stop.is_set():
        try:
            busy = await asyncio.to_thread(step)
        except Exception:
            log.exception("%s failed; retrying", name)
            busy = False
        if busy:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
