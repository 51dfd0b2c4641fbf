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
        except Exception as exc:
            if interpreter_exiting(exc):
                return
            log.exception("%s failed; retrying", name)
            busy = False
        if busy:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


def interpreter_exiting(exc: BaseException) -> bool:
    """True when a background loop outlived its executor because the process is exiting."""
    return isinstance(exc, RuntimeError) and "after shutdown" in str(exc)
