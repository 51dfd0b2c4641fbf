"""Alembic migrations create exactly the schema the code declares, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from jetbridge.storage.db import create_database_engine
from jetbridge.storage.migrate import upgrade
from jetbridge.storage.schema import metadata


def test_migrations_match_the_declared_schema(database_url: str) -> None:
    engine = create_database_engine(database_url)
    upgrade(engine)
    upgrade(engine)  # idempotent on every start
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert differences == []


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    engine = create_database_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()
