"""The FIDS board in real headless Chromium: snapshot, live changes, remarks, local times."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jetbridge.aodb.cdc import DEFAULT_MAPPING, SqlChangeCapture, TableMapping
from jetbridge.aodb.simulator import AodbSimulator, Change, plan_day
from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.flights.cdc_runner import CdcRunner
from jetbridge.flights.hub import FlightHub
from jetbridge.storage.db import create_database_engine
from support.servers import serve_app


def test_board_shows_departures_and_follows_changes(
    browser: Any, sqlite_url: str, tmp_path: Path
) -> None:
    app = create_app(Settings(database_url=sqlite_url, run_workers=False))
    legacy = create_database_engine(f"sqlite:///{tmp_path / 'aodb.db'}")
    today = datetime.now(UTC).date()
    plan = plan_day(seed=8, day=today, rotations=8)
    simulator = AodbSimulator(legacy, plan, speed=1e9)
    simulator.install()
    with serve_app(app) as base:
        runner = CdcRunner(
            SqlChangeCapture(legacy, TableMapping.load(DEFAULT_MAPPING)),
            FlightHub(app.state.platform.backbone),
        )
        runner.step()
        page = browser.new_page()
        page.goto(f"{base}/fids/ZRH")
        page.wait_for_function(
            "() => document.querySelectorAll('#board tr').length === 8", timeout=10_000
        )
        departure = next(m for m in plan.movements if m.departure == "ZRH")
        simulator.apply(
            Change(datetime.now(UTC), departure.mvt_id, {"GATE": "Z99", "FLT_STATUS": "BRD"})
        )
        runner.step()
        row = page.locator("#board tr", has_text="Z99")
        row.wait_for(timeout=10_000)
        cells = row.locator("td").all_inner_texts()
        assert cells[5] == "Boarding"
        assert cells[0] == departure.std.astimezone(ZoneInfo("Europe/Zurich")).strftime("%H:%M")
        assert int(row.get_attribute("data-version") or 0) >= 2
        page.goto(f"{base}/fids/ZRH?gate=Z99")
        page.wait_for_function(
            "() => document.querySelectorAll('#board tr').length === 1", timeout=10_000
        )
        page.close()
    legacy.dispose()
