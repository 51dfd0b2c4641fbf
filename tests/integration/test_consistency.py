"""One truth everywhere: a simulated day, fed shuffled, duplicated and delayed, ends with the same
version and values on every channel, and no channel ever saw a flight's version go backwards."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from test_notify_channels import retained

from jetbridge.aodb.cdc import DEFAULT_MAPPING, Position, SqlChangeCapture, TableMapping
from jetbridge.aodb.simulator import AodbSimulator, plan_day
from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.flights.cdc_runner import to_update
from jetbridge.flights.hub import FlightHub, flights_at
from jetbridge.flights.merge import apply
from jetbridge.notify.subscriptions import MEANINGFUL
from jetbridge.storage.db import create_database_engine
from support.auth import as_operator, bearer
from support.servers import serve_app
from support.webhook import webhook_receiver

DAY = date(2026, 11, 24)


class SseWatcher(threading.Thread):
    """An SSE client of the departures board recording every version it is shown."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.latest: dict[str, dict[str, Any]] = {}
        self.regressions: list[tuple[str, int, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.stream("GET", self.url, timeout=None) as response:
            kind = ""
            for line in response.iter_lines():
                if self.stop.is_set():
                    return
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    rows = json.loads(line[6:])
                    for row in rows if kind == "snapshot" else [rows]:
                        self.see(row)

    def see(self, row: dict[str, Any]) -> None:
        known = self.latest.get(row["flight_key"])
        if known and known["version"] > row["version"]:
            self.regressions.append((row["flight_key"], known["version"], row["version"]))
        if not known or row["version"] >= known["version"]:
            self.latest[row["flight_key"]] = row


def test_every_channel_agrees_after_a_disordered_day(
    mqtt_url: str, database_url: str, tmp_path: Path
) -> None:
    prefix = f"c{uuid.uuid4().hex[:8]}"
    rng = random.Random(99)
    legacy = create_database_engine(f"sqlite:///{tmp_path / 'aodb.db'}")
    plan = plan_day(seed=12, day=DAY, rotations=25)
    simulator = AodbSimulator(legacy, plan, speed=1e9)
    simulator.install()
    capture = SqlChangeCapture(legacy, TableMapping.load(DEFAULT_MAPPING))
    updates = []
    position = Position()
    for change in plan.changes:
        simulator.apply(change)
        captured, position = capture.poll(position)
        updates += [to_update(c) for c in captured]
    captured, position = capture.poll(position)
    updates += [to_update(c) for c in captured]
    reference: dict[str, Any] = {}
    for update in updates:
        reference[update.identity.key] = apply(reference.get(update.identity.key), update).state

    disordered = updates + rng.sample(updates, len(updates) // 3)  # duplicates
    rng.shuffle(disordered)  # and out of order (delayed ones arrive late)
    settings = Settings(
        database_url=database_url, mqtt_url=mqtt_url, mqtt_prefix=prefix, delivery_poll_seconds=0.05
    )
    app = create_app(settings)
    with webhook_receiver() as receiver, serve_app(app) as base:
        hub = FlightHub(app.state.platform.backbone)
        hub.apply_all(disordered[:50])
        followed = sorted({u.identity.key for u in disordered[:50]})[:5]
        auth = bearer(app, roles=("agent",), tenant="LX")
        for key in followed:
            httpx.post(
                f"{base}/api/subscriptions",
                json={"flight_key": key, "channel": "webhook", "url": receiver.url},
                headers=auth,
            ).raise_for_status()
        watcher = SseWatcher(f"{base}/api/fids/ZRH/departures/stream?date={DAY.isoformat()}")
        watcher.start()
        time.sleep(0.5)
        for start in range(50, len(disordered), 40):
            hub.apply_all(disordered[start : start + 40])
            time.sleep(0.01)
        client = TestClient(app)
        as_operator(client)
        with app.state.platform.backbone.reading() as conn:
            stored = {
                v["flight_key"]: v
                for v in flights_at(conn, airport="ZRH", day=DAY, direction="departures")
            }
        expected = {
            key: state.view()
            for key, state in reference.items()
            if state.identity.departure_airport == "ZRH"
        }
        assert {k: (v.get("gate"), v["status"]) for k, v in stored.items()} == {
            k: (v.get("gate"), v["status"]) for k, v in expected.items()
        }
        deadline = time.time() + 20
        while time.time() < deadline and any(
            watcher.latest.get(k, {}).get("version") != v["version"] for k, v in stored.items()
        ):
            time.sleep(0.1)
        watcher.stop.set()
        for key, view in stored.items():
            assert client.get(f"/api/flights/{key}").json()["version"] == view["version"]
            assert watcher.latest[key]["version"] == view["version"]
            assert watcher.latest[key]["gate"] == view.get("gate")
        assert watcher.regressions == []
        while time.time() < deadline:
            screen = retained(mqtt_url, f"{prefix}/screens/ZRH/departures/#", wait=0.5)
            mqtt_versions = {
                t.rsplit("/", 1)[1]: json.loads(b)["version"]
                for t, b in screen.items()
                if "/screens/ZRH/departures/" in t
            }
            if mqtt_versions == {k: v["version"] for k, v in stored.items()}:
                break
        assert mqtt_versions == {k: v["version"] for k, v in stored.items()}
        while time.time() < deadline and not receiver.requests:
            time.sleep(0.1)
        time.sleep(1.0)
        webhook_versions: dict[str, list[int]] = {}
        webhook_latest: dict[str, dict[str, Any]] = {}
        for _, body in receiver.requests:
            message = json.loads(body)
            webhook_versions.setdefault(message["flight_key"], []).append(message["version"])
            webhook_latest[message["flight_key"]] = message["flight"]
        ids = [headers["x-jetbridge-event-id"] for headers, _ in receiver.requests]
        assert len(ids) == len(set(ids)), "a notification was sent twice"
        states = _final_versions(app)
        finals = {key: state.version for key, state in states.items()}
        for key, versions in webhook_versions.items():
            assert versions == sorted(set(versions)), (
                f"{key}: webhook versions went backwards {versions}"
            )
            assert versions[-1] <= finals[key]
        assert webhook_latest, "no notification arrived"
        # The last notification shows what every other channel shows for what passengers follow.
        for key, flight in webhook_latest.items():
            assert _meaningful(flight) == _meaningful(states[key].view()), key
    legacy.dispose()


def _meaningful(view: dict[str, Any]) -> dict[str, Any]:
    shown = {}
    for path in MEANINGFUL:
        value: Any = view
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        shown[path] = value
    return shown


def _final_versions(app: Any) -> dict[str, Any]:
    from jetbridge.flights.hub import load_state
    from jetbridge.storage.schema import flights

    with app.state.platform.backbone.reading() as conn:
        keys = list(
            conn.execute(flights.select().with_only_columns(flights.c.flight_key)).scalars()
        )
        return {key: load_state(conn, key) for key in keys}
