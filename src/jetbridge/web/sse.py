"""A lean server-sent events response for many long-lived clients.

Starlette's StreamingResponse runs two tasks per client in a task group (one streaming, one
listening for the disconnect). With thousands of screens on one board that per-client machinery
is most of the cost of a fan-out. Here the stream runs in the request's own task, the disconnect
is noticed by one callback, and each chunk goes to the server as the bytes object it is, so a
frame rendered once is shared by every client rather than copied. `ClientWriter.write_now` even
lets another task (the broadcaster) write to a client without waking the client's task at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from typing import Any, cast

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from jetbridge.ops import metrics

KEEP_ALIVE = b": keep-alive\n\n"
# The reason given when a client is cut off for not reading (see LogBroadcaster): its stream ends
# without a final chunk and the connection closes; the client reconnects with Last-Event-ID.
HANG_UP = "jetbridge: client stalled"
_LEFT = "jetbridge: client disconnected"
_SHUTDOWN = "jetbridge: shutting down"


def end_streams(streams: set[asyncio.Task[Any]]) -> None:
    """Close the open streams (the process is shutting down): each ends its response cleanly
    and the client reconnects, to another process, resuming from its Last-Event-ID."""
    for task in list(streams):
        task.cancel(_SHUTDOWN)


_log = logging.getLogger(__name__)

_CLIENTS = metrics.STREAM_CLIENTS.labels("sse")
_FRAMES = metrics.STREAM_FRAMES.labels("sse")


class ClientWriter:
    """Writes chunks of one client's event stream."""

    __slots__ = ("_send",)

    def __init__(self, send: Send) -> None:
        self._send = send

    async def write(self, chunk: bytes) -> None:
        _FRAMES.inc()
        await self._send({"type": "http.response.body", "body": chunk, "more_body": True})

    def write_now(self, chunk: bytes) -> Awaitable[None] | None:
        """Write from any task without waiting: None when the server took the chunk at once
        (the usual case), else an awaitable the client's own task awaits to finish the write
        (the client's socket buffer is full) or to raise what the write raised."""
        _FRAMES.inc()
        message = {"type": "http.response.body", "body": chunk, "more_body": True}
        # Run the server's send coroutine by hand up to its first wait, if it has one.
        step = cast("Coroutine[Any, Any, None]", self._send(message))
        try:
            waiting_on = step.send(None)
        except StopIteration:
            return None
        except Exception as exc:
            return _Raise(exc)
        return _Rest(step, waiting_on)


class _Rest:
    """The rest of a started coroutine, to be awaited in another task."""

    def __init__(self, step: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        self.step = step
        self.waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, None]:
        waiting_on = self.waiting_on
        while True:
            try:
                value = yield waiting_on
            except GeneratorExit:
                self.step.close()
                raise
            except BaseException as exc:
                try:
                    waiting_on = self.step.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting_on = self.step.send(value)
                except StopIteration:
                    return

    def close(self) -> None:
        self.step.close()


class _Raise:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __await__(self) -> Generator[Any, Any, None]:
        raise self.exc
        yield  # a generator, so that it can be awaited

    def close(self) -> None:
        pass


def last_event_id(header: str | None) -> int | None:
    """The log position a reconnecting client saw last, or None when the header is absent or
    not one we could have sent (then the client starts afresh)."""
    if header is None or not header.isascii() or not header.isdigit() or len(header) > 18:
        return None
    return int(header)


def discard(pending: Awaitable[None]) -> None:
    """Drop a write `write_now` left unfinished (its client is gone or being cut off)."""
    if isinstance(pending, _Rest | _Raise):
        pending.close()


class EventStreamResponse(Response):
    """`text/event-stream` written by `stream(writer)`, in the request's own task."""

    media_type = "text/event-stream"

    def __init__(
        self,
        stream: Callable[[ClientWriter], Awaitable[None]],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.stream = stream
        self.status_code = 200
        self.background = None
        defaults = {"cache-control": "no-store", "x-accel-buffering": "no"}
        self.init_headers({**defaults, **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        streaming = True

        def left(watcher: asyncio.Future[None]) -> None:
            if streaming and not watcher.cancelled():
                task.cancel(_LEFT)

        watcher = asyncio.ensure_future(_disconnected(receive))
        watcher.add_done_callback(left)
        _CLIENTS.inc()
        platform = getattr(getattr(scope.get("app"), "state", None), "platform", None)
        streams: set[asyncio.Task[Any]] = platform.streams if platform is not None else set()
        streams.add(task)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await self.stream(ClientWriter(send))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError as exc:
            if exc.args == (HANG_UP,):
                task.uncancel()
                _log.warning("cut off an SSE client that stopped reading; it resumes on reconnect")
            elif exc.args == (_LEFT,):
                task.uncancel()
            elif exc.args == (_SHUTDOWN,):
                task.uncancel()
                with contextlib.suppress(Exception):  # the client may be gone already
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                raise
        finally:
            streaming = False
            streams.discard(task)
            watcher.cancel()
            _CLIENTS.dec()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
