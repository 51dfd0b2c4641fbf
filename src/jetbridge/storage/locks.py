"""Cluster-wide mutual exclusion on PostgreSQL, for start-up steps every process runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text


@contextmanager
def exclusively(engine: Engine, name: str) -> Iterator[None]:
    """Hold the session advisory lock `name` while the block runs: processes starting together
    (migrations, the default buses and rules) take turns. SQLite has one process: no lock."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        key = {"name": name}
        conn.execute(text("SELECT pg_advisory_lock(hashtextextended(:name, 0))"), key)
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(hashtextextended(:name, 0))"), key)
            conn.commit()
