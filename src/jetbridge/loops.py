"""The one polling loop every background consumer uses: step, and wait only when idle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from jetbridge.storage.transient import backoff, is_transient

log = logging.getLogger(__name__)
MAX_BACKOFF = 10.0


async def poll_until_stopped(
    step: Callable[[], object], stop: asyncio.Event, *, interval: float, name: str
) -> None:
    """Run `step` in a thread repeatedly; after an idle (falsy) step, wait `interval`; after a
    failed one, wait longer each time in a row (exponential backoff up to `MAX_BACKOFF`)."""
    failures = 0
    while not stop.is_set():
        try:
            busy = await asyncio.to_thread(step)
            failures = 0
        except Exception as exc:
            if interpreter_exiting(exc):
                return
            failures += 1
            if is_transient(exc):
                log.warning("%s: transient database error (%s); retrying", name, exc)
            else:
                log.exception("%s failed; retrying", name)
            busy = False
        if busy:
            continue
        pause = interval if not failures else max(interval, backoff(failures, ceiling=MAX_BACKOFF))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=pause)


def interpreter_exiting(exc: BaseException) -> bool:
    """True when a background loop outlived its executor because the process is exiting."""
    return isinstance(exc, RuntimeError) and "after shutdown" in str(exc)
