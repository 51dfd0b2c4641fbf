"""Process roles: many processes starting together on one database."""

from __future__ import annotations

import asyncio
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from jetbridge.config import Settings
from jetbridge.storage.db import create_database_engine
from support import aio


def test_processes_starting_together_on_a_fresh_database_prepare_it_in_turn(
    postgres_url: str,
) -> None:
    """Migrations, the default buses and the platform's rules: each process prepares, none
    fails on another's half-done work (a duplicate rule, a migration applied twice)."""
    import threading

    from jetbridge.app import build_platform

    platforms = [
        build_platform(Settings(database_url=postgres_url, run_workers=False)) for _ in range(4)
    ]
    barrier = threading.Barrier(len(platforms))
    failures: list[BaseException] = []

    def prepare(platform: Any) -> None:
        barrier.wait()
        try:
            platform.prepare()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=prepare, args=(p,)) for p in platforms]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with platforms[0].engine.connect() as conn:
        rules = conn.execute(text("SELECT count(*) FROM rules")).scalar_one()
    assert rules >= 1
    for platform in platforms:
        platform.engine.dispose()


def test_the_capture_role_captures_every_configured_source(tmp_path: Path) -> None:
    from jetbridge.aodb.legacy import legacy_metadata
    from jetbridge.aodb.simulator import AodbSimulator, plan_day
    from jetbridge.roles import run_capture
    from jetbridge.storage.schema import flights

    legacy = create_database_engine(f"sqlite:///{tmp_path / 'aodb.db'}")
    legacy_metadata.create_all(legacy)
    AodbSimulator(legacy, plan_day(seed=7, day=date(2026, 12, 1), rotations=3)).install()
    platform_url = f"sqlite:///{tmp_path / 'jb.db'}"
    settings = Settings(
        database_url=platform_url, data_dir=tmp_path, aodb_url=str(legacy.url), settings_file=None
    )
    stop = asyncio.Event()
    platform = create_database_engine(platform_url)

    def captured() -> int:
        with platform.connect() as conn:
            try:
                return len(conn.execute(select(flights.c.flight_key)).all())
            except OperationalError:  # not prepared yet
                return 0

    async def run() -> int:
        capture = asyncio.create_task(run_capture(settings, stop))
        deadline = time.monotonic() + 120
        while captured() < 6 and time.monotonic() < deadline and not capture.done():
            await asyncio.sleep(0.1)
        stop.set()
        await capture
        return captured()

    assert aio.run(run()) == 6  # three rotations: an arrival and a departure each
    legacy.dispose()
    platform.dispose()


def test_the_capture_role_says_what_it_lacks(tmp_path: Path) -> None:
    from jetbridge.errors import ConfigurationError
    from jetbridge.roles import run_capture

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'jb.db'}", data_dir=tmp_path, aodb_url=None,
        settings_file=None,
    )  # fmt: skip
    with pytest.raises(ConfigurationError, match=r"\[capture\] section"):
        aio.run(run_capture(settings, asyncio.Event()))
    assert not (tmp_path / "jb.db").exists()
