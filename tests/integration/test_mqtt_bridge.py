"""Flight changes reach MQTT as retained per-flight and per-screen messages."""

from __future__ import annotations

import json
import time
import uuid
from datetime import date
from pathlib import Path

from fastapi.testclient import TestClient
from test_notify_channels import retained

from jetbridge.aodb.cdc import DEFAULT_MAPPING, SqlChangeCapture, TableMapping
from jetbridge.aodb.simulator import AodbSimulator, plan_day
from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.flights.cdc_runner import CdcRunner
from jetbridge.flights.hub import FlightHub, flights_at
from jetbridge.storage.db import create_database_engine


def test_a_booting_screen_gets_every_flight_at_once(
    mqtt_url: str, sqlite_url: str, tmp_path: Path
) -> None:
    prefix = f"jb{uuid.uuid4().hex[:8]}"
    app = create_app(Settings(database_url=sqlite_url, mqtt_url=mqtt_url, mqtt_prefix=prefix))
    legacy = create_database_engine(f"sqlite:///{tmp_path / 'aodb.db'}")
    plan = plan_day(seed=3, day=date(2026, 11, 24), rotations=5)
    simulator = AodbSimulator(legacy, plan, speed=1e9)
    simulator.install()
    with TestClient(app):
        runner = CdcRunner(
            SqlChangeCapture(legacy, TableMapping.load(DEFAULT_MAPPING)),
            FlightHub(app.state.platform.backbone),
        )
        runner.step()
        for change in plan.changes:
            simulator.apply(change)
        while runner.step():
            pass
        expected = {}
        with app.state.platform.backbone.reading() as conn:
            for view in flights_at(
                conn, airport="ZRH", day=date(2026, 11, 24), direction="departures"
            ):
                expected[view["flight_key"]] = view["version"]
        deadline = time.time() + 15
        screen: dict[str, bytes] = {}
        while time.time() < deadline:
            screen = retained(mqtt_url, f"{prefix}/screens/ZRH/departures/#", wait=0.5)
            versions = {
                topic.rsplit("/", 1)[1]: json.loads(body)["version"]
                for topic, body in screen.items()
            }
            if versions == expected:
                break
        assert {
            topic.rsplit("/", 1)[1]: json.loads(body)["version"] for topic, body in screen.items()
        } == expected
        flights = retained(mqtt_url, f"{prefix}/flights/#", wait=0.5)
        assert len([topic for topic in flights if topic.startswith(f"{prefix}/flights/")]) == 10
    legacy.dispose()
