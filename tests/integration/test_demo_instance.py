"""`jetbridge up --demo` never touches a running demo's data: a second one stops before any
write when the data directory or the port is taken, and the simulated day is replaced only with
--reset."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from jetbridge.aodb.legacy import legacy_metadata, movements
from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.demo import install_demo
from jetbridge.instance import AlreadyRunning, claim
from jetbridge.storage.db import create_database_engine
from support.auth import as_operator
from support.servers import free_port


def legacy_day(data_dir: Path) -> str:
    """A demo AODB holding one cancelled flight of today, as a running demo would have it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{data_dir / 'aodb.db'}"
    engine = create_database_engine(url)
    legacy_metadata.create_all(engine)
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(
            movements.insert().values(
                MVT_ID=1, AL_CODE="LX", FLT_NO="318", SCHED_DATE=now.date().isoformat(),
                DEP_AP="ZRH", ARR_AP="CDG", FLT_STATUS="CNL", STD_UTC=now, LAST_UPD=now,
                ROW_VER=3,
            )
        )  # fmt: skip
    engine.dispose()
    return url


def statuses(url: str) -> list[tuple[int, str, int]]:
    engine = create_database_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(movements.c.MVT_ID, movements.c.FLT_STATUS, movements.c.ROW_VER)
        ).all()
    engine.dispose()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def up_demo(data_dir: Path, port: int) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "JETBRIDGE_DATA_DIR": str(data_dir),
        "JETBRIDGE_DATABASE_URL": f"sqlite:///{data_dir / 'jetbridge.db'}",
    }
    return subprocess.run(
        [sys.executable, "-m", "jetbridge.cli", "up", "--demo", "--port", str(port)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_second_demo_on_the_same_data_directory_writes_nothing(tmp_path: Path) -> None:
    url = legacy_day(tmp_path)
    before = (tmp_path / "aodb.db").read_bytes()
    running = claim(tmp_path, host="127.0.0.1", port=free_port())
    try:
        second = up_demo(tmp_path, free_port())
    finally:
        running.release()
    assert second.returncode == 2
    assert "already serves the data directory" in second.stderr
    assert f"process {os.getpid()}" in second.stderr
    assert (tmp_path / "aodb.db").read_bytes() == before
    assert statuses(url) == [(1, "CNL", 3)]
    assert not (tmp_path / "jetbridge.db").exists()


def test_a_demo_on_a_port_in_use_writes_nothing(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        second = up_demo(tmp_path, port)
    assert second.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in second.stderr
    assert not (tmp_path / "jetbridge.db").exists() and not (tmp_path / "aodb.db").exists()


def test_the_lock_is_released_with_its_holder(tmp_path: Path) -> None:
    first = claim(tmp_path, host="127.0.0.1", port=0)
    with pytest.raises(AlreadyRunning, match="already serves"):
        claim(tmp_path, host="127.0.0.1", port=0)
    first.release()
    claim(tmp_path, host="127.0.0.1", port=0).release()


def demo_board(
    data_dir: Path, *, reset: bool, until: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """Today's departures board once `until` holds for it (the demo publishes its network to
    the hub at start; what the AODB holds arrives through change capture)."""
    settings = Settings(database_url=f"sqlite:///{data_dir / 'jb.db'}", data_dir=data_dir)
    app = create_app(settings)
    install_demo(app, speed=1e6, reset=reset)
    day = datetime.now(UTC).date().isoformat()
    with TestClient(app) as client:
        as_operator(client)
        deadline = time.time() + 90
        rows: list[dict[str, Any]] = []
        while time.time() < deadline and not until(rows):
            rows = client.get("/api/fids/ZRH/departures", params={"date": day}).json()
            time.sleep(0.1)
    return rows


def test_an_existing_simulated_day_is_shown_not_rewritten_unless_reset(tmp_path: Path) -> None:
    url = legacy_day(tmp_path)

    def cancelled_lx318(rows: list[dict[str, Any]]) -> bool:
        return ("LX318", "cancelled") in [(r["flight"], r["status"]) for r in rows]

    rows = demo_board(tmp_path, reset=False, until=cancelled_lx318)
    assert cancelled_lx318(rows)  # the AODB's day as it was, captured
    assert statuses(url) == [(1, "CNL", 3)]  # and not rewritten
    demo_board(tmp_path, reset=True, until=bool)
    assert (1, "CNL", 3) not in statuses(url)
