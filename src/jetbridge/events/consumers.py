"""Idempotent consumers: record each processed event id in the same transaction as the effect."""

from __future__ import annotations

import time

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from jetbridge.storage.schema import processed_events


def first_time(conn: Connection, *, consumer: str, event_id: str) -> bool:
    """Mark `event_id` processed by `consumer`; False if it already was (a redelivery).

    Call it inside the transaction that applies the event's effect, so the effect and the mark
    commit together and a redelivered event is skipped.
    """
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    result = conn.execute(
        dialect_insert(processed_events)
        .values(consumer=consumer, event_id=event_id, processed_at=time.time())
        .on_conflict_do_nothing()
        .returning(processed_events.c.event_id)
    )
    return result.scalar_one_or_none() is not None


def was_processed(conn: Connection, *, consumer: str, event_id: str) -> bool:
    query = select(processed_events.c.event_id).where(
        processed_events.c.consumer == consumer, processed_events.c.event_id == event_id
    )
    return conn.execute(query).first() is not None
