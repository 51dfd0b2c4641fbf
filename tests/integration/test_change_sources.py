"""Each change source feeds the hub through the same runner; the demo fills the board."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from jetbridge import reference
from jetbridge.aodb.cdc import DEFAULT_MAPPING, TableMapping
from jetbridge.aodb.legacy import legacy_metadata
from jetbridge.aodb.pg_logical import PgLogicalCapture
from jetbridge.aodb.simulator import AodbSimulator, plan_day
from jetbridge.aodb.sources import LogicalSource, open_source
from jetbridge.app import build_platform, create_app
from jetbridge.config import Settings
from jetbridge.demo import install_demo
from jetbridge.flights.cdc_runner import CdcRunner
from jetbridge.flights.hub import FlightHub, flights_at
from jetbridge.schedules import network_schedule
from jetbridge.storage.db import create_database_engine
from support.auth import as_operator

DAY = date(2026, 11, 24)


def run_day(source_factory, legacy_url: str, platform_url: str) -> int:  # type: ignore[no-untyped-def]
    legacy = create_database_engine(legacy_url)
    legacy_metadata.drop_all(legacy)
    legacy_metadata.create_all(legacy)
    source = source_factory(legacy)
    plan = plan_day(seed=6, day=DAY, rotations=4)
    simulator = AodbSimulator(legacy, plan, speed=1e9)
    simulator.install()
    for change in plan.changes:
        simulator.apply(change)
    platform = build_platform(Settings(database_url=platform_url, run_workers=False))
    platform.prepare()
    runner = CdcRunner(source, FlightHub(platform.backbone))
    while runner.step():
        pass
    with platform.backbone.reading() as conn:
        versions = [
            v["version"] for v in flights_at(conn, airport="ZRH", day=DAY, direction="departures")
        ]
    platform.engine.dispose()
    legacy.dispose()
    assert len(versions) == 4
    assert all(v > 1 for v in versions)
    return len(versions)


def test_logical_decoding_source_feeds_the_hub(postgres_url: str, sqlite_url: str) -> None:
    slot = f"jb_{uuid.uuid4().hex[:8]}"
    sources: list[LogicalSource] = []

    def factory(legacy):  # type: ignore[no-untyped-def]
        sources.append(
            LogicalSource(PgLogicalCapture(legacy, TableMapping.load(DEFAULT_MAPPING), slot=slot))
        )
        return sources[0]

    run_day(factory, postgres_url, sqlite_url)
    again, _ = sources[0].read(None)
    assert again == []  # acknowledged
    sources[0].capture.drop()


def test_binlog_source_feeds_the_hub(mariadb_url: str, sqlite_url: str) -> None:
    schema = f"jb_{uuid.uuid4().hex[:8]}"
    admin = create_engine(mariadb_url.replace("mysql://", "mysql+pymysql://", 1))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE {schema}"))
    url = mariadb_url.rsplit("/", 1)[0] + f"/{schema}"
    try:
        run_day(
            lambda legacy: open_source(
                "binlog", url=url, engine=legacy, mapping=TableMapping.load(DEFAULT_MAPPING)
            ),
            url,
            sqlite_url,
        )
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE {schema}"))
        admin.dispose()


def test_the_demo_boards_the_flights_it_sells(tmp_path: Path) -> None:
    # The simulated day runs in moments: flights that took off keep their place on the board.
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'jb.db'}",
        data_dir=tmp_path,
        board_departed_minutes=24 * 60,
    )
    app = create_app(settings)
    install_demo(app, speed=1e6)
    day = datetime.now(UTC).date().isoformat()
    departing = {r for r in reference.network() if r.origin == "ZRH"}
    with TestClient(app) as client:
        as_operator(client)
        deadline = time.time() + 60
        rows: list[dict[str, Any]] = []
        while time.time() < deadline and not any(r.get("version", 1) > 1 for r in rows):
            rows = client.get("/api/fids/ZRH/departures", params={"date": day}).json()
            time.sleep(0.2)
        assert len(rows) == len(departing)
        assert any(r.get("version", 1) > 1 for r in rows)  # the AODB's changes reached the hub
        published = network_schedule(start=datetime.now(UTC).date(), days=2)
        today = {
            e.identity.key
            for e in published
            if e.origin == "ZRH" and e.operating_date.isoformat() == day
        }
        assert {r["flight_key"] for r in rows} == today  # the board shows the flights sold
        tomorrow = published[-1].operating_date.isoformat()
        sold = client.get(
            "/api/flights/search",
            params={"origin": "ZRH", "destination": "LHR", "date": tomorrow},
        ).json()
        assert {o["airline"] for o in sold} == {"LX", "BA"}
        assert all(o["flight_key"].startswith(o["flight_id"]) for o in sold)
