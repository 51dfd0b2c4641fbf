"""PostgreSQL logical decoding: every committed change arrives, unacknowledged ones come again."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from sqlalchemy import text

from jetbridge.aodb.cdc import DEFAULT_MAPPING, TableMapping
from jetbridge.aodb.pg_logical import DecodeError, PgLogicalCapture, PgOutputDecoder
from jetbridge.aodb.simulator import AodbSimulator, plan_day
from jetbridge.storage.db import create_database_engine


def test_changes_stream_and_survive_a_missing_acknowledgement(postgres_url: str) -> None:
    engine = create_database_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.execute(text("SHOW wal_level")).scalar() == "logical"
    plan = plan_day(seed=2, day=date(2026, 11, 24), rotations=10)
    simulator = AodbSimulator(engine, plan, speed=1e9)
    simulator.install()
    capture = PgLogicalCapture(
        engine, TableMapping.load(DEFAULT_MAPPING), slot=f"jb_{uuid.uuid4().hex[:8]}"
    )
    capture.ensure_slot()
    try:
        for change in plan.changes[:30]:
            simulator.apply(change)
        changes, lsn = capture.peek()
        assert len(changes) == 30
        assert [c.key for c in changes] == [c.mvt_id for c in plan.changes[:30]]
        assert changes[0].fields["times.off_block.scheduled"].tzinfo is not None
        again, same_lsn = capture.peek()
        assert [c.row_version for c in again] == [c.row_version for c in changes]
        assert lsn is not None and same_lsn == lsn
        capture.acknowledge(lsn)
        simulator.apply(plan.changes[30])
        (latest,), _ = capture.peek()
        assert latest.key == plan.changes[30].mvt_id
    finally:
        capture.drop()
        engine.dispose()


@pytest.mark.parametrize("message", [b"I\x00\x00\x00\x07N", b"R\x00\x00", b"I"])
def test_malformed_pgoutput_messages_are_reported(message: bytes) -> None:
    with pytest.raises((DecodeError, ValueError)):
        PgOutputDecoder().decode(message)
