"""While the database is away (restarting, failing over, locked) every route that needs it
answers 503 with Retry-After and a JSON error: nothing was done, the same request may be sent
again. The outage is logged once when it begins and once when it ends, never a traceback per
request. A live stream (SSE) that loses the database ends cleanly; its client reconnects."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jetbridge.api.errors import error_body
from jetbridge.storage.transient import Outage, is_transient

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 1


class DatabaseOutage:
    """Pure ASGI middleware turning a transient database error into 503 + Retry-After."""

    def __init__(self, app: ASGIApp, *, retry_after: int = RETRY_AFTER_SECONDS) -> None:
        self.app = app
        self.retry_after = retry_after
        self.outage = Outage("the database, for API requests (answered 503)", log)
        self._next_probe = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        def watch(message: Message) -> Awaitable[None]:
            # A plain function handing back the server's own awaitable: no coroutine per chunk.
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            return send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if not is_transient(exc):
                raise
            self.outage.failed(exc)
            if status:  # a stream under way ends here, completely: its client reconnects
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await self.unavailable()(scope, receive, send)
            return
        if self.outage.ongoing and status < 500:
            await self._maybe_over(scope)

    async def _maybe_over(self, scope: Scope) -> None:
        """A request succeeded during an outage; it may not have needed the database (a
        liveness probe, a page), so the outage is over only when the database answers, asked
        at most once a second, after the answer was sent."""
        now = time.monotonic()
        if now < self._next_probe:
            return
        self._next_probe = now + 1.0
        check = scope["app"].state.platform.readiness.get("database")
        if check is not None and await asyncio.to_thread(check) is None:
            self.outage.succeeded()

    def unavailable(self) -> ASGIApp:
        response = error_body(
            503, "ServiceUnavailable", "the database is briefly unavailable; retry shortly"
        )
        response.headers["Retry-After"] = str(self.retry_after)
        return response
