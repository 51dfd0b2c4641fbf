"""The change capture keeps the position it committed in memory (no read per batch); the
lease still fences every batch it applies."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from jetbridge.aodb.cdc import DEFAULT_MAPPING, SqlChangeCapture, TableMapping
from jetbridge.aodb.lease import LeaseLost, take
from jetbridge.aodb.simulator import AodbSimulator, Change, plan_day
from jetbridge.app import build_platform
from jetbridge.config import Settings
from jetbridge.flights.capture import LeasedPositions
from jetbridge.flights.cdc_runner import CdcRunner
from jetbridge.flights.hub import FlightHub
from jetbridge.storage.db import create_database_engine
from jetbridge.storage.schema import capture_leases, events


def test_a_batch_after_the_lease_was_taken_over_commits_nothing(
    database_url: str, tmp_path: Path
) -> None:
    platform = build_platform(
        Settings(database_url=database_url, run_workers=False, data_dir=tmp_path / "data")
    )
    platform.prepare()
    backbone = platform.backbone
    legacy = create_database_engine(f"sqlite:///{tmp_path / 'aodb.db'}")
    plan = plan_day(seed=4, day=date(2026, 11, 24), rotations=3)
    simulator = AodbSimulator(legacy, plan, speed=1e9)
    simulator.install()
    runner = CdcRunner(
        SqlChangeCapture(legacy, TableMapping.load(DEFAULT_MAPPING)), FlightHub(backbone)
    )
    with backbone.transaction() as conn:
        lease = take(conn, source=runner.name, holder="first", lease_seconds=60)
    assert lease is not None
    runner.positions = LeasedPositions(lease)

    def stored() -> tuple[int, str | None]:
        with backbone.reading() as conn:
            count = conn.execute(select(func.count()).select_from(events)).scalar_one()
            position = conn.execute(select(capture_leases.c.position)).scalar_one()
        return count, position

    mvt = plan.movements[0].mvt_id
    deadline = time.monotonic() + 60
    while stored()[1] is None:  # the installed rows, captured under the lease
        assert time.monotonic() < deadline
        runner.step()
    # The next batches start from the position kept in memory, not read back.
    simulator.apply(Change(datetime.now(UTC), mvt, {"GATE": "A1"}))
    before = stored()
    while stored() == before:
        assert time.monotonic() < deadline
        runner.step()

    # Another capturer takes the lease over (the first one's lapsed) before the next batch.
    with backbone.transaction() as conn:
        lease.release(conn)
        assert take(conn, source=runner.name, holder="second", lease_seconds=60) is not None
    taken_over = stored()
    simulator.apply(Change(datetime.now(UTC), mvt, {"GATE": "B2"}))
    with pytest.raises(LeaseLost):
        while time.monotonic() < deadline:
            runner.step()
    assert stored() == taken_over
    legacy.dispose()
    backbone.engine.dispose()
