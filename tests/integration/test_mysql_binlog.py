"""MariaDB binlog change capture against a real server with row-based binary logging."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from sqlalchemy import create_engine, text

from jetbridge.aodb.cdc import DEFAULT_MAPPING, TableMapping
from jetbridge.aodb.legacy import movements
from jetbridge.aodb.mysql_binlog import BinlogCapture, BinlogPosition, connection_settings
from jetbridge.aodb.simulator import AodbSimulator, plan_day


def test_binlog_rows_arrive_and_resume_from_a_stored_position(mariadb_url: str) -> None:
    schema = f"jb_{uuid.uuid4().hex[:8]}"
    admin = create_engine(mariadb_url.replace("mysql://", "mysql+pymysql://", 1))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE {schema}"))
    url = mariadb_url.rsplit("/", 1)[0] + f"/{schema}"
    engine = create_engine(url.replace("mysql://", "mysql+pymysql://", 1))
    try:
        capture = BinlogCapture(url, TableMapping.load(DEFAULT_MAPPING))
        start = capture.current_position()
        plan = plan_day(seed=9, day=date(2026, 11, 24), rotations=5)
        simulator = AodbSimulator(engine, plan, speed=1e9)
        simulator.install()
        for change in plan.changes[:12]:
            simulator.apply(change)
        changes, position = capture.read(start)
        assert len(changes) == 10 + 12
        assert changes[-1].key == plan.changes[11].mvt_id
        assert changes[0].fields["status"] == "scheduled"
        assert position is not None
        saved = BinlogPosition.parse(position.to_json())
        nothing, _ = BinlogCapture(url, capture.mapping).read(saved)
        assert nothing == []
        simulator.apply(plan.changes[12])
        (latest,), _ = BinlogCapture(url, capture.mapping).read(saved)
        assert latest.key == plan.changes[12].mvt_id
    finally:
        movements.drop(engine, checkfirst=True)
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE {schema}"))
        engine.dispose()
        admin.dispose()


def test_binlog_deletes_carry_the_flight_and_column_changes_are_noticed(mariadb_url: str) -> None:
    schema = f"jb_{uuid.uuid4().hex[:8]}"
    admin = create_engine(mariadb_url.replace("mysql://", "mysql+pymysql://", 1))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE {schema}"))
    url = mariadb_url.rsplit("/", 1)[0] + f"/{schema}"
    engine = create_engine(url.replace("mysql://", "mysql+pymysql://", 1))
    try:
        capture = BinlogCapture(url, TableMapping.load(DEFAULT_MAPPING))
        start = capture.current_position()
        plan = plan_day(seed=9, day=date(2026, 11, 24), rotations=1)
        AodbSimulator(engine, plan, speed=1e9).install()
        key = plan.movements[0].mvt_id
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM FLIGHT_MOVEMENTS WHERE MVT_ID = :k"), {"k": key})
            conn.execute(text("ALTER TABLE FLIGHT_MOVEMENTS DROP COLUMN BELT"))
            conn.execute(text("UPDATE FLIGHT_MOVEMENTS SET ROW_VER = ROW_VER + 1"))
        changes, _ = capture.read(start)
        deleted = [c for c in changes if c.deleted]
        assert [c.key for c in deleted] == [key]
        assert deleted[0].identity["airline"] == plan.movements[0].airline
        assert deleted[0].fields == {}
        assert any("BELT" in notice for notice in capture.watch.drain())
    finally:
        movements.drop(engine, checkfirst=True)
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE {schema}"))
        engine.dispose()
        admin.dispose()


@pytest.mark.parametrize("bad", ["binlog", "binlog.000001:x", ":12"])
def test_bad_positions_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="binlog position"):
        BinlogPosition.parse(bad)


def test_bad_urls_are_rejected() -> None:
    with pytest.raises(ValueError, match="MariaDB URL"):
        connection_settings("postgresql://x/y")
