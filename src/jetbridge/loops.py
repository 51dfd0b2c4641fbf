"""The one polling loop every background consumer uses: step, and wait only when idle."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
from collections.abc import Callable
from typing import TypeVar

from jetbridge.storage.transient import Outage, backoff

log = logging.getLogger(__name__)
MAX_BACKOFF = 10.0
T = TypeVar("T")


async def poll_until_stopped(
    step: Callable[[], object],
    stop: asyncio.Event,
    *,
    interval: float,
    name: str,
    wakeup: asyncio.Event | None = None,
    outage: Outage | None = None,
    threads: concurrent.futures.Executor | None = None,
    turn: asyncio.Lock | None = None,
) -> None:
    """Run `step` in a thread (of `threads`, else the loop's default pool) repeatedly; after an
    idle (falsy) step, wait `interval` (or until `wakeup` is set); after a failed one, wait
    longer each time in a row (exponential backoff up to `MAX_BACKOFF`). Loops doing the same
    work may share one `outage`: one warning for all of them, and one `turn`: then idle loops
    wait one after another, so together they step once an `interval` rather than each once."""
    outage = outage or Outage(name, log)
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        if wakeup is not None:
            wakeup.clear()  # before the step: a wake-up during it is not lost
        try:
            context = contextvars.copy_context()
            busy = await loop.run_in_executor(threads, context.run, step)
            outage.succeeded()
        except Exception as exc:
            if interpreter_exiting(exc):
                return
            outage.failed(exc)
            busy = False
        if busy:
            continue
        if outage.ongoing:
            pause = max(interval, backoff(outage.failures, ceiling=MAX_BACKOFF))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)
        elif turn is None:
            await idle(stop, wakeup, interval)
        else:
            async with turn:
                await idle(stop, wakeup, interval)


def this_loops(states: dict[asyncio.AbstractEventLoop, T], make: Callable[[], T]) -> T:
    """The running event loop's entry of `states`, made on its first use; a new loop (a
    server, a test's client) also drops the entries of loops closed meanwhile."""
    loop = asyncio.get_running_loop()
    state = states.get(loop)
    if state is None:
        for closed in [other for other in states if other.is_closed()]:
            del states[closed]
        state = states[loop] = make()
    return state


async def idle(stop: asyncio.Event, wakeup: asyncio.Event | None, seconds: float) -> None:
    """Waits `seconds`, or less when `stop` or `wakeup` (if given) is set first."""
    waiters = [asyncio.ensure_future(stop.wait())]
    if wakeup is not None:
        waiters.append(asyncio.ensure_future(wakeup.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def interpreter_exiting(exc: BaseException) -> bool:
    """True when a background loop outlived its executor because the process is exiting."""
    # "cannot schedule new futures after shutdown", or "... after interpreter shutdown"
    return isinstance(exc, RuntimeError) and str(exc).endswith("shutdown")
