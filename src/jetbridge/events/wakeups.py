"""Commit wake-ups between processes sharing one PostgreSQL, through LISTEN/NOTIFY.

A transaction that appends events to a bus also sends `NOTIFY` on `CHANNEL` with the bus's name
as payload. PostgreSQL delivers a notification only when (and if) its transaction commits, so a
listener never reads a log position that is not there yet. Every process keeps one connection
listening and turns each notification into the same in-memory signal its own commits raise
(`Backbone.notify`): live streams and the delivery worker read at once instead of polling.

On SQLite there is one process; its own commits signal it in memory and nothing here runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg
from sqlalchemy.engine import make_url

from jetbridge.storage.transient import Outage, backoff

CHANNEL = "jetbridge_commits"
# PostgreSQL refuses payloads of 8,000 bytes or more; bus names are far shorter.
MAX_PAYLOAD = 512
_log = logging.getLogger(__name__)


def libpq_url(database_url: str) -> str:
    """The connection string psycopg takes for a SQLAlchemy PostgreSQL URL."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class CommitListener:
    """Listens for other processes' commits and calls `on_commit(bus)` for each.

    After (re)connecting it calls `on_commit(None)`: commits made while it was not listening
    were not announced to it, so everyone should look once. While it is not connected,
    `listening` is False and readers fall back to polling.
    """

    def __init__(self, database_url: str, on_commit: Callable[[str | None], None]) -> None:
        self._conninfo = libpq_url(database_url)
        self._on_commit = on_commit
        self.listening = False
        self.received = 0
        self._outage = Outage("commit listener", _log)

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until `stop` is set (or the task is cancelled), reconnecting after a failure."""
        while not stop.is_set():
            listening = asyncio.ensure_future(self._listen())
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({listening, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if listening.done():
                    listening.result()
            except (psycopg.Error, OSError) as exc:
                self._outage.failed(exc, transient=True)
            finally:
                self.listening = False
                for task in (listening, stopping):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, psycopg.Error, OSError):
                        await task
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff(self._outage.failures, ceiling=5.0))

    async def _listen(self) -> None:
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=10
        )
        async with conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            self.listening = True
            self._outage.succeeded()
            self._on_commit(None)
            async for notice in conn.notifies():  # until the connection fails or is cancelled
                self.received += 1
                self._on_commit(notice.payload or None)
