"""The console's ingestion overview: each change-capture source's lease holder, last position
time, lag and changes per minute, and each feed's accepted, warned and refused messages."""

from __future__ import annotations

import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from jetbridge.aodb import lease
from jetbridge.aodb.cdc import DEFAULT_MAPPING, TableMapping
from jetbridge.aodb.legacy import legacy_metadata
from jetbridge.aodb.simulator import AodbSimulator, plan_day
from jetbridge.aodb.sources import open_source
from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.flights.cdc_runner import CdcRunner
from jetbridge.flights.hub import FlightHub
from jetbridge.storage.db import create_database_engine
from support.auth import as_operator, bearer

DATA = Path(__file__).parents[1] / "unit" / "flights" / "data"


def feed(overview: dict[str, Any], name: str) -> dict[str, Any]:
    found = [row for row in overview["feeds"] if row["feed"] == name]
    return found[0] if found else {"accepted": 0, "warned": 0, "refused": 0}


def test_ingestion_overview_shows_capture_sources_and_feed_outcomes(
    database_url: str, tmp_path: Path
) -> None:
    legacy_url = f"sqlite:///{tmp_path / 'aodb.db'}"
    legacy = create_database_engine(legacy_url)
    legacy_metadata.create_all(legacy)
    AodbSimulator(legacy, plan_day(seed=7, day=date(2026, 12, 1), rotations=3)).install()
    app = create_app(Settings(database_url=database_url, run_workers=False))
    with TestClient(app) as client:
        platform = app.state.platform
        assert platform.monitor is not None
        as_operator(client)
        before = client.get("/api/console/ingestion").json()

        # A capture in this process reads the simulated day's six movements.
        name = f"gate-db-{uuid.uuid4().hex[:6]}"
        source = open_source(
            "watermark", url=legacy_url, engine=legacy, mapping=TableMapping.load(DEFAULT_MAPPING)
        )
        platform.monitor.baseline()
        runner = CdcRunner(source, FlightHub(platform.backbone), name=name)
        read = 0
        while moved := runner.step():
            read += moved
        assert read == 6
        platform.monitor.evaluate()
        # Another capturer, elsewhere, holds the lease of a second source.
        with platform.engine.begin() as conn:
            held = lease.take(conn, source="ramp-db", holder="ops-host:4242", lease_seconds=60)
            assert held is not None
            held.save(conn, "position-17")
        # Feeds: one message accepted, one with a warning, one refused.
        aidx = (DATA / "aidx_departure.xml").read_bytes()
        assert client.post("/api/ingest/aidx", content=aidx).status_code == 200
        warned = client.post("/api/ingest/mvt", content=b"MVT\nLX318/24.HBJDA.ZRH\nAD2561")
        assert warned.status_code == 200, warned.text
        refused = client.post("/api/ingest/mvt", content=b"MVT\nLX318/2X.HBJDA.ZRH\nAD0738")
        assert refused.status_code == 400

        answer = client.get("/api/console/ingestion")
        assert answer.status_code == 200, answer.text
        overview = answer.json()
        sources = {row["source"]: row for row in overview["sources"]}
        captured = sources[name]
        assert captured["position_at"] is not None
        assert captured["position_age_seconds"] < 120
        assert captured["lag_seconds"] is not None and captured["lag_seconds"] >= 0
        assert captured["changes_per_minute_now"] > 0
        assert captured["changes_per_minute"][-1][1] == captured["changes_per_minute_now"]
        ramp = sources["ramp-db"]
        assert ramp["holder"] == "ops-host:4242"
        assert ramp["lease_until"] > time.time()
        assert ramp["lag_seconds"] is None  # not captured by this process
        for kind, outcome in (("aidx", "accepted"), ("mvt", "warned"), ("mvt", "refused")):
            assert feed(overview, kind)[outcome] == feed(before, kind)[outcome] + 1, kind
        mvt = feed(overview, "mvt")
        assert mvt["warnings_last_hour"] >= 1 and mvt["refusals_last_hour"] >= 1
        assert [row["feed"] for row in overview["feeds"]] == sorted(
            row["feed"] for row in overview["feeds"]
        )

        # Sources and feeds serve the whole platform: a tenant's operations staff may not look.
        tenant_ops = bearer(app, roles=("operations",), tenant="LX")
        assert TestClient(app).get("/api/console/ingestion", headers=tenant_ops).status_code == 403
        assert TestClient(app).get("/api/console/ingestion").status_code == 401
    legacy.dispose()
