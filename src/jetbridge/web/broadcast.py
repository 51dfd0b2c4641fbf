"""One reader of the event log per process, fanned out to every live client (SSE).

Clients never poll the database themselves: the broadcaster reads new events once into a window
of recent events, renders each batch once per view (a board), and writes that one bytes object to
every caught-up client of the view itself, without waking the clients' tasks. A client whose
socket is full, one resuming from an older position, or one that fell behind, catches up in its
own task from the window or, behind the window, from the log, so nothing is missed. Nothing is
queued per client: a client that stops reading holds only what the server has buffered for its
socket, and is cut off after `stall_seconds`, to reconnect and resume from its Last-Event-ID.

The reader is woken by commits rather than a clock: this process's own commits signal it in
memory and, on PostgreSQL, other processes' commits reach it through LISTEN/NOTIFY
(`jetbridge.events.wakeups`). While such a signal is live (`signalled()`), it looks at the log
unprompted only every `interval` seconds, as a safety net; without one, every `fallback`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

from jetbridge.events.backbone import Backbone
from jetbridge.jsonlimits import stored_json
from jetbridge.loops import MAX_BACKOFF, interpreter_exiting
from jetbridge.storage.transient import Outage, backoff
from jetbridge.web.sse import HANG_UP, KEEP_ALIVE, ClientWriter, discard

Item = tuple[int, dict[str, Any]]
_log = logging.getLogger(__name__)


Render = Callable[[list[Item]], bytes]


@dataclass(slots=True, eq=False)
class _Follower:
    task: asyncio.Task[Any]
    writer: ClientWriter
    view: Hashable
    render: Render
    sent: int
    busy_since: float | None = None  # when its current write began, while it waits on it
    wake: asyncio.Future[tuple[int, Awaitable[None] | None]] | None = None


class LogBroadcaster:
    def __init__(
        self,
        backbone: Backbone,
        *,
        bus: str,
        interval: float = 1.0,
        fallback: float = 0.02,
        signalled: Callable[[], bool] = lambda: True,
        gap: float = 0.005,
        window: int = 4096,
        heartbeat_seconds: float = 15.0,
        stall_seconds: float = 30.0,
    ) -> None:
        self.backbone = backbone
        self.bus = bus
        self.interval = interval
        self.fallback = fallback
        self.signalled = signalled
        self.gap = gap
        self.window = window
        self.heartbeat_seconds = heartbeat_seconds
        self.stall_seconds = stall_seconds
        self.position = 0  # the last event read from the log
        self._floor = 0  # the window holds every event after this one
        self._seqs: list[int] = []
        self._items: list[Item] = []
        self._followers: set[_Follower] = set()
        # Followers that have sent everything so far, by view: the broadcaster writes to them.
        self._parked: dict[Hashable, dict[_Follower, None]] = {}
        self._waiting: list[asyncio.Future[None]] = []  # for the next batch
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._poke: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outage = Outage(f"the live reader of bus {bus!r}", _log)
        # Rendered frames per (event, view), shared by every client of this log in this process.
        self.frames: OrderedDict[Any, bytes] = OrderedDict()
        self._shared: OrderedDict[Any, asyncio.Future[Any]] = OrderedDict()

    @property
    def followers(self) -> int:
        return len(self._followers)

    async def start(self) -> None:
        async with self._starting:  # many clients arrive at once: still one reader
            if self._task is not None:
                return
            self._loop = asyncio.get_running_loop()
            self._poke = asyncio.Event()
            self.position = self._floor = await asyncio.to_thread(self.latest)
            self.backbone.listeners.append(self._committed)
            self._task = asyncio.create_task(self._run())

    def _committed(self) -> None:
        """A transaction of this process committed: read now rather than at the next poll."""
        if self._loop is not None and self._poke is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                self._loop.call_soon_threadsafe(self._poke.set)

    def latest(self) -> int:
        """The newest position of the bus's log, read from the database (blocking)."""
        with self.backbone.reading() as conn:
            return self.backbone.log.latest_seq(conn, bus=self.bus)

    def _read(self, after: int, limit: int = 1000) -> list[Item]:
        with self.backbone.reading() as conn:
            stored = self.backbone.log.read(conn, bus=self.bus, after=after, limit=limit)
        return [(e.seq, stored_json(e.body, where="event")) for e in stored]

    async def _run(self) -> None:
        assert self._poke is not None
        loop = asyncio.get_running_loop()
        next_check = loop.time()
        next_beat = next_check + self.heartbeat_seconds
        while True:
            self._poke.clear()
            started = loop.time()
            batch = await self._read_on()
            if batch:
                self._publish(batch)
            now = loop.time()
            if now >= next_beat:
                next_beat = now + self.heartbeat_seconds
                for group in list(self._parked.values()):
                    self._write_parked(group, KEEP_ALIVE)
            if now >= next_check:
                next_check = now + min(1.0, self.stall_seconds / 4)
                self._cut_off_stalled(now)
            if not batch:
                wait = self.interval if self.signalled() else self.fallback
                if self._outage.ongoing:  # clients stay, kept alive; reading resumes later
                    wait = backoff(self._outage.failures, ceiling=MAX_BACKOFF)
                wait = min(wait, max(0.0, min(next_beat, next_check) - loop.time()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._poke.wait(), wait)
                # Under a stream of commits, read at most every `gap` seconds, in batches.
                await asyncio.sleep(started + self.gap - loop.time())

    async def _read_on(self) -> list[Item]:
        """The next events; none while the database is away (the reader outlives it)."""
        try:
            batch = await asyncio.to_thread(self._read, self.position)
        except Exception as exc:
            if interpreter_exiting(exc):
                raise
            self._outage.failed(exc)
            return []
        self._outage.succeeded()
        return batch

    def _append(self, batch: list[Item]) -> None:
        self._seqs += [seq for seq, _ in batch]
        self._items += batch
        self.position = batch[-1][0]
        if len(self._items) > 2 * self.window:
            cut = len(self._items) - self.window
            self._floor = self._seqs[cut - 1]
            del self._seqs[:cut], self._items[:cut]

    def _publish(self, batch: list[Item]) -> None:
        before = self.position
        self._append(batch)
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            if not waiter.done():
                waiter.set_result(None)
        for view, group in list(self._parked.items()):
            try:
                chunk = next(iter(group)).render(batch)
            except Exception:
                _log.exception("rendering events %d-%d for %s failed", before, self.position, view)
                for follower in list(group):  # each meets the error in its own task
                    self._wake(follower, before, None)
                continue
            if chunk:
                self._write_parked(group, chunk)

    def _write_parked(self, group: dict[_Follower, None], chunk: bytes) -> None:
        """The fan-out itself: one shared chunk written to each client without waking it. A
        client whose socket is full is handed the unfinished write and unparked."""
        slow = []
        for follower in group:
            pending = follower.writer.write_now(chunk)
            if pending is not None:
                slow.append((follower, pending))
        for follower, pending in slow:
            self._wake(follower, self.position, pending)

    def _wake(self, follower: _Follower, sent: int, pending: Awaitable[None] | None) -> None:
        """Hand a parked follower back to its own task, at `sent`, with a write to finish."""
        self._unpark(follower)
        if follower.wake is None or follower.wake.done():  # cancelled, not yet unwound
            if pending is not None:
                discard(pending)
        else:
            follower.wake.set_result((sent, pending))

    def _unpark(self, follower: _Follower) -> None:
        group = self._parked.get(follower.view)
        if group is not None:
            group.pop(follower, None)
            if not group:
                del self._parked[follower.view]

    def _cut_off_stalled(self, now: float) -> None:
        for follower in list(self._followers):
            if follower.busy_since is not None and now - follower.busy_since > self.stall_seconds:
                self._followers.discard(follower)
                follower.task.cancel(HANG_UP)

    async def serve(
        self, after: int | None, *, writer: ClientWriter, view: Hashable, render: Render
    ) -> None:
        """Write every event after `after` (from now if None) to one client, live, in log order,
        without gaps, as `render` shows a batch of them; until the caller is cancelled.

        Followers with equal `view` must render alike: a live batch is rendered once per view.
        A client whose write has waited longer than `stall_seconds` is cancelled with HANG_UP.
        """
        await self.start()
        task = asyncio.current_task()
        assert task is not None
        sent = self.position if after is None else after
        follower = _Follower(task, writer, view, render, sent)
        self._followers.add(follower)
        try:
            while True:
                if follower.sent < self._floor:
                    batch = await asyncio.to_thread(self._read, follower.sent)
                    if not batch:  # the log no longer holds them (retention): go on from here
                        follower.sent = self._floor
                        continue
                elif follower.sent < self.position:
                    batch = self._items[bisect_right(self._seqs, follower.sent) :]
                elif follower.sent > self.position:  # its snapshot saw further than read here
                    await self._next_batch()
                    continue
                else:
                    await self._park(follower)
                    continue
                follower.sent = batch[-1][0]
                if chunk := render(batch):
                    await self._busy(follower, writer.write(chunk))
        finally:
            self._followers.discard(follower)
            self._unpark(follower)

    async def _park(self, follower: _Follower) -> None:
        """Wait, caught up, while the broadcaster writes to this client; back to the client's
        own task when a write could not finish at once."""
        wake = follower.wake = asyncio.get_running_loop().create_future()
        self._parked.setdefault(follower.view, {})[follower] = None
        try:
            follower.sent, pending = await wake
        except asyncio.CancelledError:
            if wake.done() and not wake.cancelled() and (unfinished := wake.result()[1]):
                discard(unfinished)
            raise
        finally:
            self._unpark(follower)
        if pending is not None:
            await self._busy(follower, pending)

    async def _next_batch(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        await waiter

    async def _busy(self, follower: _Follower, write: Awaitable[None]) -> None:
        follower.busy_since = asyncio.get_running_loop().time()
        try:
            await write
        finally:
            follower.busy_since = None

    def shared(self, key: Any, load: Callable[[], Awaitable[Any]], *, keep: int = 64) -> Any:
        """An awaitable of `load()`'s value, loaded once for every caller with the same key."""
        found = self._shared.get(key)
        if found is None or (found.done() and (found.cancelled() or found.exception())):
            found = self._shared[key] = asyncio.ensure_future(load())
            if len(self._shared) > keep:
                self._shared.popitem(last=False)
        return asyncio.shield(found)

    async def close(self) -> None:
        if self._committed in self.backbone.listeners:
            self.backbone.listeners.remove(self._committed)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
