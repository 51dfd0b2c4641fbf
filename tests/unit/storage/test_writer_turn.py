"""SQLite write transactions of one process take turns on a lock of the process (instead of
SQLite's sleep-and-retry), and every way a transaction ends gives the turn back."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, exc, text

from jetbridge.storage.db import create_database_engine
from jetbridge.storage.transient import is_transient


def _engine(path: Path, busy_timeout: float = 30.0) -> Engine:
    engine = create_database_engine(f"sqlite:///{path}", busy_timeout=busy_timeout)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS t (n INTEGER)"))
    return engine


def _rows(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return [n for (n,) in conn.execute(text("SELECT n FROM t ORDER BY rowid"))]


def _second_writer(engine: Engine, n: int) -> tuple[threading.Thread, threading.Event]:
    """A thread that writes `n` in a transaction of its own; the event is set once it began."""
    began = threading.Event()

    def write() -> None:
        with engine.begin() as conn:
            began.set()
            conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})

    thread = threading.Thread(target=write)
    thread.start()
    return thread, began


def test_a_second_writer_begins_once_the_first_commits(tmp_path: Path) -> None:
    engine = _engine(tmp_path / "db.sqlite")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        thread, began = _second_writer(engine, 2)
        assert not began.wait(0.3)  # waiting for its turn
    thread.join(30)
    assert began.is_set()
    assert _rows(engine) == [1, 2]


@pytest.mark.parametrize("ending", ["rollback", "close", "invalidate", "failed statement"])
def test_every_way_a_write_transaction_ends_gives_the_turn_back(
    tmp_path: Path, ending: str
) -> None:
    engine = _engine(tmp_path / "db.sqlite", busy_timeout=5.0)
    conn = engine.connect()
    transaction = conn.begin()
    conn.execute(text("INSERT INTO t VALUES (1)"))
    if ending == "rollback":
        transaction.rollback()
        conn.close()
    elif ending == "close":
        conn.close()  # the pool rolls it back
    elif ending == "invalidate":
        conn.invalidate()
        conn.close()
    else:
        with pytest.raises(exc.OperationalError):
            conn.execute(text("INSERT INTO no_such_table VALUES (1)"))
        transaction.rollback()
        conn.close()
    thread, began = _second_writer(engine, 2)
    thread.join(30)
    assert began.is_set()
    assert _rows(engine) == [2]


def test_readers_do_not_wait_for_the_turn(tmp_path: Path) -> None:
    engine = _engine(tmp_path / "db.sqlite")
    with engine.begin() as writer:
        writer.execute(text("INSERT INTO t VALUES (1)"))
        with engine.connect() as reader:
            reader.execution_options(readonly=True)
            assert reader.execute(text("SELECT count(*) FROM t")).scalar() == 0


def test_a_writer_kept_waiting_past_the_busy_timeout_fails_as_sqlite_would(
    tmp_path: Path,
) -> None:
    engine = _engine(tmp_path / "db.sqlite", busy_timeout=0.2)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        failed: list[BaseException] = []

        def write() -> None:
            try:
                with engine.begin() as other:
                    other.execute(text("INSERT INTO t VALUES (2)"))
            except Exception as error:
                failed.append(error)

        thread = threading.Thread(target=write)
        thread.start()
        thread.join(30)
    (error,) = failed
    assert isinstance(error, exc.OperationalError)
    assert "database is locked (by another write transaction)" in str(error)
    assert is_transient(error)
    assert _rows(engine) == [1]


def test_engines_on_one_file_share_the_turn_and_other_files_do_not(tmp_path: Path) -> None:
    first = _engine(tmp_path / "one.sqlite")
    same = _engine(tmp_path / "one.sqlite")
    other = _engine(tmp_path / "two.sqlite")
    with first.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        elsewhere, began_elsewhere = _second_writer(other, 9)
        elsewhere.join(30)
        assert began_elsewhere.is_set()
        thread, began = _second_writer(same, 2)
        assert not began.wait(0.3)
    thread.join(30)
    assert _rows(same) == [1, 2]
    assert _rows(other) == [9]


def test_another_process_holding_the_lock_past_the_timeout_leaves_the_turn_free(
    tmp_path: Path,
) -> None:
    """A writer outside this process (a plain connection stands in for one) holds SQLite's
    lock: this process's writer fails after the busy timeout, and gives the turn back."""
    path = tmp_path / "db.sqlite"
    engine = _engine(path, busy_timeout=0.2)
    outsider = sqlite3.connect(path, isolation_level=None)
    outsider.execute("BEGIN IMMEDIATE")
    with pytest.raises(exc.OperationalError) as raised, engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
    assert is_transient(raised.value)
    outsider.execute("COMMIT")
    outsider.close()
    thread, began = _second_writer(engine, 2)
    thread.join(30)
    assert began.is_set()
    assert _rows(engine) == [2]
