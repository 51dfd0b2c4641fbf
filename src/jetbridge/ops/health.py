"""Readiness: whether this process can do its work now, and if not, why (never a secret: no
addresses, no credentials, only what failed and its kind)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, text

OK = "ok"
# A check answers None when ready, else the reason in words.
Check = Callable[[], str | None]


@dataclass(slots=True)
class Heartbeat:
    """A loop's last sign of life; stale when it has not beaten for `stale_after` seconds."""

    name: str
    stale_after: float
    last: float = field(default_factory=time.monotonic)

    def beat(self) -> None:
        self.last = time.monotonic()

    def check(self) -> str | None:
        silent = time.monotonic() - self.last
        if silent > self.stale_after:
            return f"{self.name} has not made progress for {silent:.0f} s"
        return None


def database_check(engine: Engine) -> Check:
    """Ready when the platform's schema can be read: `SELECT 1` alone touches no page of an
    SQLite file, so a file replaced by something else would still pass."""

    def check() -> str | None:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT version_num FROM alembic_version"))
        except Exception as exc:
            return f"the database does not answer ({type(exc).__name__})"
        return None

    return check


def nats_check(
    link: Check,
    backlog: Callable[[], tuple[int, float | None]],
    *,
    most: int,
    oldest_seconds: float,
) -> Check:
    """Distributed mode: NATS connected and JetStream answering (`link`), and the outbox not
    holding more than `most` events or any older than `oldest_seconds`."""

    def check() -> str | None:
        reason = link()
        if reason is not None:
            return reason
        waiting, oldest = backlog()
        if waiting > most:
            return f"{waiting} events wait in the outbox for JetStream (more than {most})"
        age = 0.0 if oldest is None else time.time() - oldest
        if age > oldest_seconds:
            return (
                f"the oldest event waiting for JetStream was put {age:.0f} s ago "
                f"(more than {oldest_seconds:g} s)"
            )
        return None

    return check


def task_check(name: str, tasks: Callable[[], list[asyncio.Task[None]]]) -> Check:
    """The process's background loops must all still run."""

    def check() -> str | None:
        for task in tasks():
            if task.done():
                if task.cancelled():
                    return f"a {name} loop was cancelled"
                error = task.exception()
                kind = type(error).__name__ if error is not None else "ended"
                return f"a {name} loop stopped ({kind})"
        return None

    return check


def run_checks(checks: dict[str, Check]) -> tuple[bool, dict[str, str]]:
    """Every check's answer: ready only when all are."""
    answers: dict[str, str] = {}
    for name, check in checks.items():
        try:
            reason = check()
        except Exception as exc:
            reason = f"the check failed ({type(exc).__name__})"
        answers[name] = OK if reason is None else reason
    return all(answer == OK for answer in answers.values()), answers
