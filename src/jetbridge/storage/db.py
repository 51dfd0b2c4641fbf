"""Database engines: SQLite (WAL) on the embedded default, PostgreSQL (psycopg 3) by URL."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
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

    turn = _writer_turn(database)

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # Straight to the driver: a BEGIN is not a statement worth SQLAlchemy's bookkeeping;
        # its errors are raised as SQLAlchemy raises a statement's.
        dbapi_connection = conn.connection.dbapi_connection
        readonly = conn.get_execution_options().get("readonly", False)
        statement = "BEGIN" if readonly else "BEGIN IMMEDIATE"
        try:
            if not readonly:
                turn.take(dbapi_connection, busy_timeout)
            dbapi_connection.execute(statement)
        except sqlite3.Error as exc:
            turn.give_back(dbapi_connection)
            raise sa_exc.DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc
        except BaseException:
            turn.give_back(dbapi_connection)
            raise

    dialect: Any = engine.dialect
    plain_commit, plain_rollback, plain_close = (
        dialect.do_commit,
        dialect.do_rollback,
        dialect.do_close,
    )

    def do_commit(dbapi_connection: Any) -> None:
        plain_commit(dbapi_connection)  # a failed commit still holds SQLite's lock: rollback
        turn.give_back(dbapi_connection)

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            plain_rollback(dbapi_connection)
        finally:
            turn.give_back(dbapi_connection)

    def do_close(dbapi_connection: Any) -> None:
        try:
            plain_close(dbapi_connection)
        finally:
            turn.give_back(dbapi_connection)

    dialect.do_commit, dialect.do_rollback, dialect.do_close = do_commit, do_rollback, do_close
    return engine


class _WriterTurn:
    """Write transactions of this process on one SQLite database take turns here before
    `BEGIN IMMEDIATE`. SQLite makes a writer that finds the lock taken sleep and try again
    (1 ms, then 2, 5, 10 ms and longer), so two of this process's writers meeting cost the
    second at least a millisecond; waiting on a lock of the process instead, it starts the
    moment the first commits. Other processes (a CLI command) still meet SQLite's busy timeout.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder: int | None = None

    def take(self, connection: Any, timeout: float) -> None:
        if not self._lock.acquire(timeout=timeout):
            # What SQLite says after its own busy timeout, so callers handle it the same way.
            raise sqlite3.OperationalError("database is locked (by another write transaction)")
        self._holder = _identity(connection)

    def give_back(self, connection: Any) -> None:
        if self._holder == _identity(connection):
            self._holder = None
            self._lock.release()


def _identity(connection: Any) -> int:
    """The DBAPI connection's identity, whether given it or the pool's proxy around it."""
    return id(getattr(connection, "dbapi_connection", None) or connection)


_TURNS: dict[str, _WriterTurn] = {}
_TURNS_LOCK = threading.Lock()


def _writer_turn(database: str | None) -> _WriterTurn:
    """The turn of every engine of this process on the same database file (an in-memory
    database is its engine's own)."""
    if not database or database == ":memory:":
        return _WriterTurn()
    key = str(Path(database).resolve())
    with _TURNS_LOCK:
        return _TURNS.setdefault(key, _WriterTurn())


def _lenient_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
