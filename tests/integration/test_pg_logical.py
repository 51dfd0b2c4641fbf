"""PostgreSQL logical decoding: every committed change arrives, unacknowledged ones come again."""

from __future__ import annotations

import contextlib
import struct
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, text

from jetbridge.aodb.cdc import DEFAULT_MAPPING, TableMapping
from jetbridge.aodb.pg_logical import (
    DecodeError,
    PgLogicalCapture,
    PgOutputDecoder,
    RowMessage,
    lsn_text,
    parse_lsn,
)
from jetbridge.aodb.simulator import AodbSimulator, DayPlan, plan_day
from jetbridge.storage.db import create_database_engine


@contextlib.contextmanager
def capturing(
    postgres_url: str, *, seed: int, rotations: int
) -> Iterator[tuple[Engine, DayPlan, AodbSimulator, PgLogicalCapture]]:
    """A simulated AODB day's table with a logical decoding capture on a slot of its own,
    dropped afterwards."""
    engine = create_database_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.execute(text("SHOW wal_level")).scalar() == "logical"
    plan = plan_day(seed=seed, day=date(2026, 11, 24), rotations=rotations)
    simulator = AodbSimulator(engine, plan, speed=1e9)
    simulator.install()
    capture = PgLogicalCapture(
        engine, TableMapping.load(DEFAULT_MAPPING), slot=f"jb_{uuid.uuid4().hex[:8]}"
    )
    capture.ensure_slot()
    try:
        yield engine, plan, simulator, capture
    finally:
        capture.drop()
        engine.dispose()


def test_changes_stream_and_survive_a_missing_acknowledgement(postgres_url: str) -> None:
    with capturing(postgres_url, seed=2, rotations=10) as (_, plan, simulator, capture):
        for change in plan.changes[:30]:
            simulator.apply(change)
        changes, lsn, skipped = capture.peek()
        assert len(changes) == 30 and skipped is None
        assert [c.key for c in changes] == [c.mvt_id for c in plan.changes[:30]]
        assert changes[0].fields["times.off_block.scheduled"].tzinfo is not None
        again, same_lsn, _ = capture.peek()
        assert [c.row_version for c in again] == [c.row_version for c in changes]
        assert lsn is not None and same_lsn == lsn
        # What was applied before is skipped when the acknowledgement was lost.
        assert capture.peek(after=lsn)[:2] == ([], None)
        capture.acknowledge(lsn_text(lsn))
        simulator.apply(plan.changes[30])
        (latest,), _, _ = capture.peek()
        assert latest.key == plan.changes[30].mvt_id


@pytest.mark.parametrize("message", [b"I\x00\x00\x00\x07N", b"R\x00\x00", b"I"])
def test_malformed_pgoutput_messages_are_reported(message: bytes) -> None:
    with pytest.raises((DecodeError, ValueError)):
        PgOutputDecoder().decode(message)


def _relation_and_tuple(values: list[str | None]) -> tuple[bytes, bytes]:
    """A pgoutput relation of an int and a timestamptz column, and a tuple of `values`."""
    columns = [(b"MVT_ID", 23), (b"STD", 1184)]
    relation = b"R" + struct.pack("!i", 7) + b"public\x00T\x00d" + struct.pack("!h", 2)
    relation += b"".join(
        b"\x01" + name + b"\x00" + struct.pack("!ii", oid, -1) for name, oid in columns
    )
    row = struct.pack("!h", len(values))
    for value in values:
        row += b"n" if value is None else b"t" + struct.pack("!i", len(value)) + value.encode()
    return relation, row


def test_pgoutput_rows_decode_to_python_values() -> None:
    relation, new = _relation_and_tuple(["17", "2026-11-30 20:00:00+00"])
    _, old = _relation_and_tuple(["17", None])
    decoder = PgOutputDecoder()
    decoder.decode(relation)
    updated = decoder.decode(b"U" + struct.pack("!i", 7) + b"O" + old + b"N" + new)
    assert isinstance(updated, RowMessage) and not updated.deleted
    assert updated.row == {"MVT_ID": 17, "STD": datetime(2026, 11, 30, 20, tzinfo=UTC)}
    deleted = decoder.decode(b"D" + struct.pack("!i", 7) + b"K" + old)
    assert isinstance(deleted, RowMessage) and deleted.row == {"MVT_ID": 17, "STD": None}
    with pytest.raises(DecodeError, match="STD: value truncated"):
        decoder.decode(b"I" + struct.pack("!i", 7) + b"N" + new[:-3])


def test_deletes_arrive_with_the_key_and_schema_changes_are_noticed(postgres_url: str) -> None:
    with capturing(postgres_url, seed=3, rotations=2) as (
        engine,
        plan,
        simulator,
        capture,
    ):
        simulator.apply(plan.changes[0])
        key = plan.changes[0].mvt_id
        with engine.begin() as conn:
            conn.execute(text('DELETE FROM "FLIGHT_MOVEMENTS" WHERE "MVT_ID" = :k'), {"k": key})
            conn.execute(text('ALTER TABLE "FLIGHT_MOVEMENTS" RENAME COLUMN "GATE" TO "GATE_ID"'))
        with engine.begin() as conn:
            conn.execute(text('UPDATE "FLIGHT_MOVEMENTS" SET "ROW_VER" = "ROW_VER" + 1'))
        changes, _, _ = capture.peek()
        assert [c.deleted for c in changes][:2] == [False, True]
        deleted = changes[1]
        assert deleted.key == key and deleted.identity == {} and deleted.fields == {}
        notices = capture.watch.drain()
        assert "new column GATE_ID, column GATE gone" in notices[0]
        assert any("GATE" in notice and "not captured" in notice for notice in notices)
        assert all("gate" not in c.fields for c in changes[2:])


@pytest.mark.parametrize("bad", ["", "16", "16/", "/1", "G/1", "123456789/0", "1/2/3"])
def test_bad_lsns_are_named(bad: str) -> None:
    with pytest.raises(ValueError, match="LSN"):
        parse_lsn(bad)


def test_lsns_round_trip() -> None:
    assert lsn_text(parse_lsn("16/B374D848")) == "16/B374D848"


def test_acknowledging_keeps_the_slots_restart_point_close(postgres_url: str) -> None:
    """After an acknowledgement the capture has a snapshot of running transactions logged, so
    the slot's restart point (where every read starts decoding) follows the acknowledged
    position instead of lagging until the server logs one itself."""
    with capturing(postgres_url, seed=3, rotations=10) as (
        engine,
        plan,
        simulator,
        capture,
    ):
        lag = text(
            "SELECT pg_current_wal_lsn() - restart_lsn FROM pg_replication_slots WHERE slot_name = :s"
        )
        with engine.connect() as conn:
            version = int(conn.execute(text("SHOW server_version_num")).scalar_one())
        for change in plan.changes[:100]:
            simulator.apply(change)
        changes, lsn, _ = capture.peek()
        assert len(changes) == 100 and lsn is not None
        with engine.connect() as conn:
            behind = conn.execute(lag, {"s": capture.slot}).scalar_one()
        capture.acknowledge(lsn_text(lsn))
        simulator.apply(plan.changes[100])
        (latest,), lsn, _ = capture.peek()
        assert latest.key == plan.changes[100].mvt_id and lsn is not None
        capture.acknowledge(lsn_text(lsn))  # decodes past the snapshot logged before
        with engine.connect() as conn:
            now_behind = conn.execute(lag, {"s": capture.slot}).scalar_one()
        assert capture.snapshots == (version >= 160000)
        if capture.snapshots:
            assert now_behind < behind / 4, (behind, now_behind)


def test_a_read_after_the_kept_connection_was_lost_opens_another(postgres_url: str) -> None:
    with capturing(postgres_url, seed=4, rotations=2) as (
        engine,
        plan,
        simulator,
        capture,
    ):
        simulator.apply(plan.changes[0])
        assert len(capture.peek()[0]) == 1
        with capture._connection() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        changes, lsn, _ = capture.peek()  # on a connection of its own
        assert [c.key for c in changes] == [plan.changes[0].mvt_id]
        assert lsn is not None
        capture.acknowledge(lsn_text(lsn))
        assert capture.peek()[0] == []
