"""One reader of the event log per process, fanned out to every live client (SSE).

Clients never poll the database themselves: the broadcaster reads new events once and puts them
on each subscriber's queue. A client resuming from an older position first reads its backlog,
then continues from the queue, skipping what it has already sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

from jetbridge.events.backbone import Backbone

Item = tuple[int, dict[str, Any]]


class LogBroadcaster:
    def __init__(
        self, backbone: Backbone, *, bus: str, interval: float = 0.02, queue_size: int = 10_000
    ) -> None:
        self.backbone = backbone
        self.bus = bus
        self.interval = interval
        self.queue_size = queue_size
        self.position = 0
        self._subscribers: set[asyncio.Queue[Item | None]] = set()
        self._task: asyncio.Task[None] | None = None
        # Rendered frames per (event, view), shared by every client of this log in this process.
        self.frames: OrderedDict[Any, str] = OrderedDict()

    async def _ensure_started(self) -> None:
        if self._task is None:
            self.position = await asyncio.to_thread(self._latest)
            self._task = asyncio.create_task(self._run())

    def _latest(self) -> int:
        with self.backbone.reading() as conn:
            return self.backbone.log.latest_seq(conn, bus=self.bus)

    def _read(self, after: int, limit: int = 1000) -> list[Item]:
        with self.backbone.reading() as conn:
            stored = self.backbone.log.read(conn, bus=self.bus, after=after, limit=limit)
        return [(e.seq, json.loads(e.body)) for e in stored]

    async def _run(self) -> None:
        while True:
            batch = await asyncio.to_thread(self._read, self.position)
            for item in batch:
                self.position = item[0]
                for queue in list(self._subscribers):
                    try:
                        queue.put_nowait(item)
                    except asyncio.QueueFull:
                        self._subscribers.discard(queue)
                        queue.put_nowait(None)  # a slow client is dropped and reconnects
            if not batch:
                await asyncio.sleep(self.interval)

    async def subscribe(self, after: int | None) -> AsyncIterator[Item]:
        """Events after `after` (from now if None), live, in log order, without gaps."""
        await self._ensure_started()
        queue: asyncio.Queue[Item | None] = asyncio.Queue(maxsize=self.queue_size)
        self._subscribers.add(queue)
        try:
            sent = self.position if after is None else after
            while after is not None:
                backlog = await asyncio.to_thread(self._read, sent)
                if not backlog:
                    break
                for item in backlog:
                    sent = item[0]
                    yield item
            while True:
                live = await queue.get()
                if live is None:
                    return
                if live[0] > sent:
                    sent = live[0]
                    yield live
        finally:
            self._subscribers.discard(queue)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
