"""Database engines: SQLite (WAL) on the embedded default, PostgreSQL (psycopg 3) by URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def normalise_url(url: str) -> str:
    """Map plain `postgresql://` to psycopg 3 and `mysql://` to PyMySQL; leave others untouched."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername in {"mysql", "mariadb"}:
        parsed = parsed.set(drivername="mysql+pymysql")
    return parsed.render_as_string(hide_password=False)


def create_database_engine(url: str, *, pool_size: int = 10, busy_timeout: float = 30.0) -> Engine:
    """Build an engine; SQLite gets WAL, a busy timeout (seconds) and foreign keys on every
    connection."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, busy_timeout)
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _sqlite_engine(url: str, database: str | None, busy_timeout: float) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # A small pool: opening a connection and setting its pragmas costs more than a commit.
    engine = create_engine(
        url,
        pool_size=8,
        max_overflow=16,
        connect_args={"check_same_thread": False, "timeout": busy_timeout},
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Python's sqlite3 opens transactions lazily; take the write lock at BEGIN instead so
        # concurrent writers queue on busy_timeout rather than failing mid-transaction.
        dbapi_connection.isolation_level = None
        # Text that is not UTF-8 (written by another program) is read with U+FFFD in place of
        # the bad bytes instead of failing the whole query.
        dbapi_connection.text_factory = _lenient_text
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        readonly = conn.get_execution_options().get("readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def _lenient_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
