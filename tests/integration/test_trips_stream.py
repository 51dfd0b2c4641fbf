"""The trips stream: a snapshot of the followed flights, then each change the hub publishes to
those flights only, from the process's one reader of the bus; flight keys are checked."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from jetbridge.app import create_app
from jetbridge.booking.catalog import ScheduleEntry
from jetbridge.config import Settings
from jetbridge.flights.hub import FlightHub
from jetbridge.flights.merge import Update
from jetbridge.schedules import publish_schedule
from support.servers import serve_app

DAY = (datetime.now(UTC) + timedelta(days=3)).date()


def _entry(number: str, hour: int) -> ScheduleEntry:
    departure = datetime(DAY.year, DAY.month, DAY.day, hour, tzinfo=UTC)
    return ScheduleEntry(
        airline="LX", flight_number=number, origin="ZRH", destination="JFK",
        departure=departure, arrival=departure + timedelta(minutes=520), aircraft_type="B77W",
        currency="CHF", fares={"economy": 90_000}, terminal="1",
    )  # fmt: skip


def _events(response: httpx.Response) -> Any:
    kind = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            yield kind, json.loads(line[6:])


def test_the_stream_shows_a_snapshot_then_changes_of_the_followed_flights(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'jb.db'}", run_workers=False))
    with serve_app(app) as base:
        platform = app.state.platform
        published = publish_schedule(platform.backbone, [_entry("14", 12), _entry("17", 9)])
        followed, other = published.flight_keys
        received: list[tuple[str, dict[str, Any]]] = []
        snapshot_seen = threading.Event()

        def listen() -> None:
            params = {"flight": followed}
            with httpx.stream("GET", f"{base}/api/trips/stream", params=params, timeout=30) as r:
                for kind, data in _events(r):
                    received.append((kind, data))
                    snapshot_seen.set()
                    if kind == "flight" and data.get("gate") == "E24":
                        return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        assert snapshot_seen.wait(30)
        hub = FlightHub(platform.backbone)
        now = datetime.now(UTC)
        for key, gate in ((other, "E60"), (followed, "E24")):
            identity = next(
                e.identity for e in (_entry("14", 12), _entry("17", 9)) if e.identity.key == key
            )
            hub.apply_all([Update(identity, "test", now, {"gate": gate})])
        listener.join(30)
        assert not listener.is_alive()
    kind, snapshot = received[0]
    assert kind == "snapshot"
    assert [f["flight_key"] for f in snapshot] == [followed]
    assert snapshot[0]["departure"]["scheduled_local"]["clock"] == "13:00"
    changes = [data for kind, data in received[1:] if kind == "flight"]
    assert [(c["flight_key"], c["gate"]) for c in changes] == [(followed, "E24")]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"flight": "LX14"},
        {"flight": "lx0014-2026-12-01-zrh-jfk"},
        {"flight": "LX0014-2026-12-01-ZRH-JFK\n"},
        {"flight": ["LX0014-2026-12-01-ZRH-JFK"] * 21},
        {"flight": "<script>"},
    ],
)
def test_bad_flight_keys_are_refused(tmp_path: Path, params: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'jb.db'}", run_workers=False))
    with TestClient(app) as client:
        response = client.get("/api/trips/stream", params=params)
    assert response.status_code in {400, 422}
    assert "flight" in response.text
