"""Lookups by key that arrive together, answered together: the keys asked for on one event
loop while a query is running are read by the next query, in one worker thread. Many
concurrent handlers each needing a row (a subscription, a flight's followers) then cost one
thread hop and one statement between them, not one each; a key asked for twice is read once.

A failed query fails every lookup it was answering (each caller's own retry decides what
follows); the lookups waiting for the next query are not touched by it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from jetbridge.loops import this_loops

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(slots=True)
class _Waiting(Generic[K, V]):
    futures: dict[K, list[asyncio.Future[V | None]]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None


@dataclass(slots=True)
class BatchedLookup(Generic[K, V]):
    """`fetch(keys)` returns the found keys' values (a missing key is answered None); it
    runs in a worker thread with at most `most` keys at a time."""

    fetch: Callable[[Sequence[K]], dict[K, V]]
    most: int = 500
    # Queries run so far: fewer than the lookups when concurrent ones were read together.
    queries: int = 0
    _loops: dict[asyncio.AbstractEventLoop, _Waiting[K, V]] = field(default_factory=dict)

    async def get(self, key: K) -> V | None:
        loop = asyncio.get_running_loop()
        waiting: _Waiting[K, V] = this_loops(self._loops, _Waiting)
        future: asyncio.Future[V | None] = loop.create_future()
        waiting.futures.setdefault(key, []).append(future)
        if waiting.reader is None or waiting.reader.done():
            # Its own context: the reader carries no one caller's trace.
            reading = self._read_waiting(waiting)
            waiting.reader = loop.create_task(reading, context=contextvars.Context())
        return await future

    async def _read_waiting(self, waiting: _Waiting[K, V]) -> None:
        batch: dict[K, list[asyncio.Future[V | None]]] = {}
        try:
            while waiting.futures:
                keys = list(waiting.futures)[: self.most]
                batch = {key: waiting.futures.pop(key) for key in keys}
                try:
                    found = await asyncio.to_thread(self.fetch, keys)
                    error: BaseException | None = None
                except Exception as exc:
                    found, error = {}, exc
                self.queries += 1
                for key, futures in batch.items():
                    for future in futures:
                        if future.done():  # the caller went away
                            continue
                        if error is not None:
                            future.set_exception(error)
                        else:
                            future.set_result(found.get(key))
                batch = {}
        finally:
            # Cancelled (the loop is shutting down): whoever still waits hears so.
            for futures in [*batch.values(), *waiting.futures.values()]:
                for future in futures:
                    if not future.done():
                        future.set_exception(RuntimeError("the lookup stopped"))
            waiting.futures.clear()
