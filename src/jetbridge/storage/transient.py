"""Which database errors pass by themselves, and retrying them with backoff.

A transient error is one where the same statement can succeed a moment later: SQLite busy or
locked, a PostgreSQL serialization failure, deadlock or lock timeout, a MySQL lock wait or
deadlock, and a connection that was lost or could not be had. Everything else (a constraint,
bad SQL, bad data) fails the same way again and is not retried.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import psycopg
from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)
T = TypeVar("T")

_SQLITE_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
_SQLITE_TEXT = ("database is locked", "database is busy", "database table is locked")
# Class 40 (serialization failure, deadlock), class 08 (connection), lock not available, too
# many connections, and the server shutting down or not yet accepting connections.
_SQLSTATE_CLASSES = ("40", "08")
_SQLSTATES = {"55P03", "53300", "57P01", "57P02", "57P03"}
# MySQL/MariaDB: lock wait timeout, deadlock, server gone away, connection lost.
_MYSQL_CODES = {1205, 1213, 2006, 2013}


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) is a database error that retrying can get past."""
    return any(_transient_one(error) for error in _chain(exc))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        original = getattr(error, "orig", None)
        pending += [error.__cause__, error.__context__]
        if isinstance(original, BaseException):
            pending.append(original)


def _transient_one(error: BaseException) -> bool:
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    if isinstance(error, sqlite3.OperationalError):
        code = getattr(error, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in _SQLITE_CODES:
            return True
        return str(error).lower().startswith(_SQLITE_TEXT)
    if isinstance(error, psycopg.Error):
        state = error.sqlstate
        if state is None:
            # No answer from the server at all: the connection broke or was never made.
            return isinstance(error, psycopg.OperationalError)
        return state.startswith(_SQLSTATE_CLASSES) or state in _SQLSTATES
    if type(error).__module__.startswith("pymysql") and error.args:
        return error.args[0] in _MYSQL_CODES
    return False


def backoff(attempt: int, *, base: float = 0.05, ceiling: float = 2.0) -> float:
    """Exponential backoff with equal jitter for the `attempt`-th retry (1, 2, ...)."""
    top = min(ceiling, base * 2.0 ** (attempt - 1))
    return top / 2 + random.uniform(0, top / 2)


def retry_transient(step: Callable[[], T], *, what: str, attempts: int = 6) -> T:
    """Run `step` (a whole transaction); after a transient error, back off and run it again,
    at most `attempts` times in all. Other errors, and the last transient one, are raised."""
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            pause = backoff(attempt)
            _log_retry(what, exc, pause, attempt, attempts)
            time.sleep(pause)
    raise AssertionError("unreachable")


async def retry_transient_async(
    step: Callable[[], Awaitable[T]], *, what: str, attempts: int = 6
) -> T:
    """`retry_transient` for a coroutine; the waits do not block the event loop."""
    for attempt in range(1, attempts + 1):
        try:
            return await step()
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            pause = backoff(attempt)
            _log_retry(what, exc, pause, attempt, attempts)
            await asyncio.sleep(pause)
    raise AssertionError("unreachable")


def reason_of(exc: BaseException) -> str:
    """An error's first line, short: for a log line, never a traceback."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines()[0][:200] if text else "") or type(exc).__name__


@dataclass(slots=True)
class Outage:
    """A run of failures of one duty, logged when it begins and when it ends, so an outage of
    minutes is a few lines rather than one per attempt. While it lasts, a line says it still
    does when the error changes (at most every `quiet_seconds`) and every `remind_seconds`
    otherwise: the error that began an outage is not always the one that keeps it going."""

    what: str
    logger: logging.Logger = log
    failures: int = 0
    since: float = 0.0
    quiet_seconds: float = 5.0
    remind_seconds: float = 60.0
    _said: str = ""
    _said_at: float = 0.0

    @property
    def ongoing(self) -> bool:
        return self.failures > 0

    def failed(self, exc: BaseException, *, transient: bool | None = None) -> int:
        """Count a failure (transient unless told otherwise: a database error `is_transient`
        decides); returns how many in a row. An error that is not transient is logged with its
        traceback every time: it will not pass by itself."""
        self.failures += 1
        if self.failures == 1:
            self.since = time.monotonic()
        if transient is None:
            transient = is_transient(exc)
        if not transient:
            self.logger.error("%s failed; retrying", self.what, exc_info=exc)
            return self.failures
        reason, now = reason_of(exc), time.monotonic()
        if self.failures == 1:
            self.logger.warning(
                "%s: unavailable (%s); backing off until it answers", self.what, reason
            )
        elif (reason != self._said and now - self._said_at >= self.quiet_seconds) or (
            now - self._said_at >= self.remind_seconds
        ):
            self.logger.warning(
                "%s: still unavailable after %.1f s (%d failed attempts): %s",
                self.what,
                now - self.since,
                self.failures,
                reason,
            )
        else:
            return self.failures
        self._said, self._said_at = reason, now
        return self.failures

    def succeeded(self) -> None:
        """The duty worked again: end the outage (one line saying how long it lasted)."""
        if self.failures:
            self.logger.warning(
                "%s: available again after %.1f s (%d failed attempts)",
                self.what,
                time.monotonic() - self.since,
                self.failures,
            )
            self.failures = 0


def _log_retry(what: str, exc: BaseException, pause: float, attempt: int, attempts: int) -> None:
    """The first retry is a warning; the ones after it only add detail (an outage would
    otherwise be a line per attempt of every transaction it meets)."""
    reason = reason_of(exc)
    log.log(
        logging.WARNING if attempt == 1 else logging.DEBUG,
        "%s: transient database error (%s); retrying in %.2f s (attempt %d of %d)",
        what,
        reason,
        pause,
        attempt + 1,
        attempts,
    )
