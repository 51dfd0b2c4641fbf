"""The FIDS board in real headless Chromium: snapshot, live changes, remarks, local times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jetbridge.aodb.cdc import DEFAULT_MAPPING, SqlChangeCapture, TableMapping
from jetbridge.aodb.simulator import AodbSimulator, Change, plan_day
from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.flights.cdc_runner import CdcRunner
from jetbridge.flights.hub import FlightHub
from jetbridge.flights.merge import Update
from jetbridge.flights.model import FlightIdentity
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


def _leg(number: str, fields: dict[str, Any], *, day: str) -> Update:
    identity = FlightIdentity.create(
        airline="LX", flight_number=number, origin_date=day,
        departure_airport="ZRH", arrival_airport="LHR",
    )  # fmt: skip
    return Update(identity, "test", datetime.now(UTC), fields)


def test_departed_flights_leave_the_board_and_the_clock_shows_local_time(
    browser: Any, sqlite_url: str
) -> None:
    app = create_app(
        Settings(database_url=sqlite_url, run_workers=False, board_departed_minutes=10)
    )
    now = datetime.now(UTC).replace(microsecond=0)
    day = now.date().isoformat()
    stamp = lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    hour_ago = stamp(now - timedelta(hours=1))
    legs = [
        # took off half an hour ago: gone for good
        _leg("100", {"status": "departed", "times.off_block.scheduled": hour_ago,
                     "times.take_off.actual": stamp(now - timedelta(minutes=30))}, day=day),
        # took off five minutes ago: leaves the page five minutes on, without any event
        _leg("200", {"status": "departed", "times.off_block.scheduled": hour_ago,
                     "times.take_off.actual": stamp(now - timedelta(minutes=5))}, day=day),
        # still to go, from terminal 2
        _leg("300", {"times.off_block.scheduled": stamp(now + timedelta(hours=1)),
                     "terminal": "2", "gate": "E44"}, day=day),
    ]  # fmt: skip
    with serve_app(app) as base:
        FlightHub(app.state.platform.backbone).apply_all(legs)
        page = browser.new_page()
        page.clock.install(time=now)  # the page's own time, moved on below
        page.goto(f"{base}/fids/ZRH")
        page.wait_for_function(
            "() => document.querySelectorAll('#board tr').length === 2", timeout=10_000
        )
        flights = page.locator("#board tr td:nth-child(2)").all_inner_texts()
        assert flights == ["LX200", "LX300"]
        terminal = page.locator("#board tr", has_text="LX300").locator("td").nth(3)
        assert terminal.inner_text() == "2"
        assert page.locator('meta[name="airport-zone"]').get_attribute("content") == "Europe/Zurich"
        page.clock.fast_forward("04:00")
        local = page.evaluate("() => Date.now()") / 1000
        expected = {  # the clock ticks each second: it may show the second before
            datetime.fromtimestamp(local - lag, ZoneInfo("Europe/Zurich")).strftime("%H:%M")
            for lag in (0, 1.5)
        }
        assert page.locator("#clock").inner_text()[:5] in expected
        assert len(page.locator("#board tr").all()) == 2
        page.clock.fast_forward("01:30")
        page.wait_for_function(
            "() => document.querySelectorAll('#board tr').length === 1", timeout=10_000
        )
        assert page.locator("#board tr td:nth-child(2)").all_inner_texts() == ["LX300"]
        page.close()
