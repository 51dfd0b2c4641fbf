"""The dead-letter queue: failed deliveries kept with their event, error, attempts and time.

`DeadLetterQueue` is what the `jetbridge dlq` commands, the `/api/dlq` routes and the alarms use;
`SqlDeadLetters` keeps the letters in the platform database, `JetStreamDeadLetters`
(`dlq_jetstream`) in a JetStream stream when NATS is configured.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, delete, func, select, update

from jetbridge.bounds import checked_id
from jetbridge.errors import NotFound
from jetbridge.events.log import NewDelivery, SqlEventLog
from jetbridge.jsonlimits import stored_json
from jetbridge.storage.schema import dead_letters, events


class DeadLetterQueue(Protocol):
    """Each call is complete on return (its own transaction or stream operation)."""

    def list(
        self,
        *,
        bus: str | None = None,
        rule: str | None = None,
        include_redriven: bool = False,
        limit: int = 100,
        after_id: int = 0,
        within: Collection[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Letters oldest first; `within` limits them to those buses (a tenant's)."""
        ...

    def redrive(
        self,
        *,
        ids: Sequence[int] | None = None,
        bus: str | None = None,
        rule: str | None = None,
        within: Collection[str] | None = None,
    ) -> int:
        """Deliver letters' events again to their own targets; returns how many."""
        ...

    def discard(self, *, letter_id: int, within: Collection[str] | None = None) -> None: ...

    def depth(self) -> dict[str, int]:
        """Letters waiting, per bus."""
        ...


@dataclass(frozen=True, slots=True)
class SqlDeadLetters:
    """The dead-letter queue in the platform database; `notify` wakes the delivery worker."""

    engine: Engine
    queue: SqlEventLog
    notify: Callable[[], None]

    def list(
        self,
        *,
        bus: str | None = None,
        rule: str | None = None,
        include_redriven: bool = False,
        limit: int = 100,
        after_id: int = 0,
        within: Collection[str] | None = None,
    ) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return list_dead_letters(
                conn,
                bus=bus,
                rule=rule,
                include_redriven=include_redriven,
                limit=limit,
                after_id=after_id,
                within=within,
            )

    def redrive(
        self,
        *,
        ids: Sequence[int] | None = None,
        bus: str | None = None,
        rule: str | None = None,
        within: Collection[str] | None = None,
    ) -> int:
        with self.engine.begin() as conn:
            count = redrive(conn, queue=self.queue, ids=ids, bus=bus, rule=rule, within=within)
        self.notify()
        return count

    def discard(self, *, letter_id: int, within: Collection[str] | None = None) -> None:
        with self.engine.begin() as conn:
            discard(conn, letter_id=letter_id, within=within)

    def depth(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(dead_letters.c.bus, func.count())
                .where(dead_letters.c.redriven_at.is_(None))
                .group_by(dead_letters.c.bus)
            ).all()
        return {str(bus): int(count) for bus, count in rows}


def list_dead_letters(
    conn: Connection,
    *,
    bus: str | None = None,
    rule: str | None = None,
    include_redriven: bool = False,
    limit: int = 100,
    after_id: int = 0,
    within: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """Dead letters, oldest first; `within` limits them to those buses (a tenant's)."""
    checked_id(after_id, "after_id")
    query = select(dead_letters).where(dead_letters.c.id > after_id)
    if within is not None:
        query = query.where(dead_letters.c.bus.in_(list(within)))
    if bus is not None:
        query = query.where(dead_letters.c.bus == bus)
    if rule is not None:
        query = query.where(dead_letters.c.rule == rule)
    if not include_redriven:
        query = query.where(dead_letters.c.redriven_at.is_(None))
    rows = conn.execute(query.order_by(dead_letters.c.id).limit(limit))
    return [_letter(row) for row in rows]


def _letter(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "bus": row.bus,
        "rule": row.rule,
        "target_id": row.target_id,
        "event": stored_json(row.body, where="event"),
        "error": row.error,
        "attempts": row.attempts,
        "failed_at": row.failed_at,
        "redriven_at": row.redriven_at,
    }


def redrive(
    conn: Connection,
    *,
    queue: SqlEventLog,
    ids: Sequence[int] | None = None,
    bus: str | None = None,
    rule: str | None = None,
    within: Collection[str] | None = None,
) -> int:
    """Queue dead letters for delivery again (fresh retry budget); returns how many."""
    query = select(dead_letters).where(dead_letters.c.redriven_at.is_(None))
    if within is not None:
        query = query.where(dead_letters.c.bus.in_(list(within)))
    for index, letter in enumerate(ids or ()):
        checked_id(letter, f"ids[{index}]")
    if ids is not None:
        query = query.where(dead_letters.c.id.in_(list(ids)))
    if bus is not None:
        query = query.where(dead_letters.c.bus == bus)
    if rule is not None:
        query = query.where(dead_letters.c.rule == rule)
    rows = list(conn.execute(query.order_by(dead_letters.c.id)))
    if ids is not None and len(rows) != len(set(ids)):
        found = {row.id for row in rows}
        missing = sorted(set(ids) - found)
        raise NotFound(f"dead letter(s) {missing} do not exist or were already redriven")
    items = []
    for row in rows:
        key = conn.execute(select(events.c.partition_key).where(events.c.seq == row.event_seq))
        items.append(NewDelivery(row.event_seq, row.bus, row.rule, row.target_id, key.scalar()))
    queue.enqueue(conn, items, now=time.time())
    if rows:
        conn.execute(
            update(dead_letters)
            .where(dead_letters.c.id.in_([row.id for row in rows]))
            .values(redriven_at=time.time())
        )
    return len(rows)


def discard(conn: Connection, *, letter_id: int, within: Collection[str] | None = None) -> None:
    checked_id(letter_id, "letter_id")
    condition = dead_letters.c.id == letter_id
    if within is not None:
        condition = condition & dead_letters.c.bus.in_(list(within))
    removed = conn.execute(delete(dead_letters).where(condition))
    if removed.rowcount == 0:
        raise NotFound(f"dead letter {letter_id} does not exist")
