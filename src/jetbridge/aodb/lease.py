"""One active capturer per source, across processes and hosts: a fenced lease row.

A capturer takes the lease of a source when nobody holds it (or the holder's lease lapsed) and
increments its generation. Every batch it applies stores the source position after it in the
same transaction, matching the generation it took the lease with; a capturer whose lease was
taken over therefore commits nothing (its transaction finds a newer generation and rolls back),
and the new holder resumes from the last position stored.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, and_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from jetbridge.storage.schema import capture_leases


class LeaseLost(RuntimeError):
    """Another capturer holds this source's lease now; this one must stop applying."""


def holder_name() -> str:
    """Who holds a lease, for operators: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class CaptureLease:
    source: str
    holder: str
    generation: int
    lease_seconds: float

    def _held(self) -> ColumnElement[bool]:
        return and_(
            capture_leases.c.source == self.source,
            capture_leases.c.generation == self.generation,
        )

    def load(self, conn: Connection) -> str | None:
        """The stored position; LeaseLost if the lease is no longer this one."""
        row = conn.execute(select(capture_leases.c.position).where(self._held())).first()
        if row is None:
            raise LeaseLost(self.source)
        return None if row.position is None else str(row.position)

    def save(self, conn: Connection, position: str | None) -> None:
        """Renew the lease and store `position` (None: keep the stored one) in `conn`'s
        transaction; LeaseLost if another capturer took the lease."""
        now = time.time()
        values: dict[str, object] = {"lease_until": now + self.lease_seconds, "updated_at": now}
        if position is not None:
            values["position"] = position
        renewed = conn.execute(update(capture_leases).where(self._held()).values(**values))
        if renewed.rowcount == 0:
            raise LeaseLost(self.source)

    def release(self, conn: Connection) -> None:
        """Let another capturer take over at once (on a clean stop)."""
        conn.execute(update(capture_leases).where(self._held()).values(lease_until=0.0))


def take(
    conn: Connection, *, source: str, holder: str, lease_seconds: float
) -> CaptureLease | None:
    """Take `source`'s lease if nobody holds it; None while another capturer does."""
    now = time.time()
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(
        dialect.insert(capture_leases)
        .values(source=source, holder="", generation=0, lease_until=0.0, updated_at=now)
        .on_conflict_do_nothing()
    )
    taken = conn.execute(
        update(capture_leases)
        .where(capture_leases.c.source == source, capture_leases.c.lease_until < now)
        .values(
            holder=holder,
            generation=capture_leases.c.generation + 1,
            lease_until=now + lease_seconds,
            updated_at=now,
        )
    )
    if taken.rowcount == 0:
        return None
    generation = conn.execute(
        select(capture_leases.c.generation).where(capture_leases.c.source == source)
    ).scalar_one()
    return CaptureLease(source, holder, int(generation), lease_seconds)


def holders(conn: Connection) -> list[dict[str, object]]:
    """Every source's lease: who holds it, until when, and the position stored with it."""
    rows = conn.execute(select(capture_leases).order_by(capture_leases.c.source))
    return [dict(row._mapping) for row in rows]
