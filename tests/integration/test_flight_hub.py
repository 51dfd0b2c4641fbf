"""From the legacy AODB to the API and the FIDS stream: CDC -> hub -> events -> channels."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from jetbridge.aodb.cdc import DEFAULT_MAPPING, SqlChangeCapture, TableMapping
from jetbridge.aodb.simulator import AodbSimulator, plan_day
from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.flights.cdc_runner import CdcRunner
from jetbridge.flights.hub import FlightHub
from jetbridge.storage.db import create_database_engine
from support.auth import as_operator
from support.servers import serve_app

DAY = date(2026, 11, 24)


@pytest.fixture
def pipeline(database_url: str, tmp_path: Any) -> Iterator[tuple[Any, AodbSimulator, CdcRunner]]:
    app = create_app(Settings(database_url=database_url, run_workers=False))
    legacy = create_database_engine(f"sqlite:///{tmp_path / 'aodb.db'}")
    plan = plan_day(seed=4, day=DAY, rotations=20)
    simulator = AodbSimulator(legacy, plan, speed=1e9)
    simulator.install()
    with TestClient(app):
        runner = CdcRunner(
            SqlChangeCapture(legacy, TableMapping.load(DEFAULT_MAPPING)),
            FlightHub(app.state.platform.backbone),
        )
        yield app, simulator, runner
    legacy.dispose()


def test_a_day_flows_from_the_aodb_to_the_api(
    pipeline: tuple[Any, AodbSimulator, CdcRunner],
) -> None:
    app, simulator, runner = pipeline
    runner.step()
    for change in simulator.plan.changes:
        simulator.apply(change)
    while runner.step():
        pass
    client = TestClient(app)
    as_operator(client)
    departures = client.get("/api/fids/ZRH/departures", params={"date": DAY.isoformat()}).json()
    assert len(departures) == 20
    assert all(row["remark"] for row in departures)
    first = departures[0]
    legs = client.get(
        "/api/flights/status", params={"flight": first["flight"], "date": DAY.isoformat()}
    ).json()
    assert legs[0]["flight_key"] == first["flight_key"]
    assert legs[0]["version"] == first["version"] > 1
    arrivals = client.get("/api/fids/ZRH/arrivals", params={"date": DAY.isoformat()}).json()
    remarks = {row["remark"].split(" ")[0] for row in arrivals}
    assert remarks & {"Baggage", "Landed", "Diverted"}
    events = client.get("/api/buses/default/events", params={"limit": 1000}).json()
    versions: dict[str, int] = {}
    for stored in events:
        data = stored["event"]["data"]
        if stored["event"]["type"] == "flight.updated":
            assert data["version"] > versions.get(data["flight_key"], 0)
            versions[data["flight_key"]] = data["version"]


def test_bad_requests_are_named(pipeline: tuple[Any, AodbSimulator, CdcRunner]) -> None:
    client = TestClient(pipeline[0])
    as_operator(client)
    assert client.get("/api/flights/status", params={"flight": "L!100"}).status_code == 400
    assert client.get("/api/flights/status", params={"flight": "x" * 50}).status_code == 422
    assert (
        client.get(
            "/api/flights/status", params={"flight": "LX9999", "date": "2026-11-24"}
        ).status_code
        == 404
    )
    assert client.get("/api/fids/zrh/departures").status_code == 422
    assert client.get("/api/fids/ZRH/sideways").status_code == 422
    assert (
        client.get("/api/flights/status", params={"flight": "LX1", "date": "yesterday"}).status_code
        == 422
    )
    assert client.get("/api/flights/schema").json()["title"] == "jetbridge flight leg"


def read_sse(response: httpx.Response, count: int) -> list[tuple[str, str, str]]:
    events: list[tuple[str, str, str]] = []
    current: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if "id" in current:
                events.append(
                    (
                        current.get("id", ""),
                        current.get("event", "message"),
                        current.get("data", ""),
                    )
                )
            current = {}
            if len([e for e in events if e[2]]) >= count:
                break
            continue
        name, _, value = line.partition(": ")
        current[name] = value
    return events


def test_sse_board_resumes_after_last_event_id(sqlite_url: str, tmp_path: Any) -> None:
    app = create_app(Settings(database_url=sqlite_url, run_workers=False))
    legacy = create_database_engine(f"sqlite:///{tmp_path / 'aodb.db'}")
    plan = plan_day(seed=4, day=DAY, rotations=6)
    simulator = AodbSimulator(legacy, plan, speed=1e9)
    simulator.install()
    with serve_app(app) as base:
        runner = CdcRunner(
            SqlChangeCapture(legacy, TableMapping.load(DEFAULT_MAPPING)),
            FlightHub(app.state.platform.backbone),
        )
        runner.step()
        url = f"{base}/api/fids/ZRH/departures/stream?date={DAY.isoformat()}"
        with httpx.stream("GET", url, timeout=10) as response:
            (snapshot,) = read_sse(response, 1)
        assert snapshot[1] == "snapshot"
        assert len(json.loads(snapshot[2])) == 6
        for change in plan.changes[:40]:
            simulator.apply(change)
        runner.step()
        with httpx.stream(
            "GET", url, headers={"Last-Event-ID": snapshot[0]}, timeout=10
        ) as response:
            resumed = read_sse(response, 3)
        assert all(kind == "flight" for _, kind, data in resumed if data)
        assert int(resumed[0][0]) > int(snapshot[0])
    legacy.dispose()


def test_merging_a_batch_at_once_equals_applying_it_update_by_update(
    database_url: str, tmp_path: Any
) -> None:
    """apply_many stores the same states and publishes the same events, in the same order, as
    apply called once per update: a new flight, a second and third change to it in the same
    batch, a stale one, one of raw values only, and a flight stored before the batch."""
    from datetime import UTC, datetime, timedelta

    from jetbridge.app import build_platform
    from jetbridge.events.envelope import CloudEvent
    from jetbridge.flights.hub import get_flight
    from jetbridge.flights.merge import Update
    from jetbridge.flights.model import FlightIdentity

    def flight(number: str) -> FlightIdentity:
        return FlightIdentity.create(
            airline="LX", flight_number=number, origin_date=DAY,
            departure_airport="ZRH", arrival_airport="JFK",
        )  # fmt: skip

    at = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    stored_before = Update(flight("9"), "aodb", at, {"gate": "Z1"})
    batch = [
        Update(flight("8"), "aodb", at, {"gate": "A1", "terminal": "1"}),
        Update(flight("8"), "aodb", at + timedelta(seconds=1), {"gate": "A2"}),
        Update(flight("9"), "aodb", at + timedelta(seconds=1), {"gate": "Z2"}),
        Update(flight("8"), "aodb", at - timedelta(seconds=5), {"gate": "OLD"}),  # stale
        Update(flight("8"), "aidx", at + timedelta(seconds=2), unknown={"x/y": "raw"}),
        Update(flight("8"), "aodb", at + timedelta(seconds=3), {"gate": "A3"}),
    ]

    def run(url: str, *, together: bool) -> tuple[list[Any], list[tuple[str, Any]]]:
        platform = build_platform(Settings(database_url=url, run_workers=False))
        platform.prepare()
        hub = FlightHub(platform.backbone)
        hub.apply_all([stored_before])
        with platform.backbone.transaction() as conn:
            if together:
                pending: list[CloudEvent] = []
                applied = hub.apply_many(conn, batch, pending)
                platform.backbone.publish(conn, bus="default", events=pending)
            else:
                applied = [a for item in batch if (a := hub.apply(conn, item)) is not None]
        with platform.backbone.reading() as conn:
            views = [get_flight(conn, key) for key in sorted({i.identity.key for i in batch})]
            stored = platform.backbone.log.read(conn, bus="default", after=0, limit=100)
        platform.engine.dispose()
        events = [(e.event_id, json.loads(e.body)["data"]) for e in stored]
        return [applied, views], events

    one_by_one = run(f"sqlite:///{tmp_path / 'one-by-one.db'}", together=False)
    together = run(database_url, together=True)
    assert together == one_by_one
    (applied, views), events = together
    assert [a.version for a in applied] == [1, 2, 2, 3]  # the stale change and raw values: none
    assert views[0]["gate"] == "A3" and views[1]["gate"] == "Z2"
    assert [event_id for event_id, _ in events].count(
        "LX0008-2026-11-24-ZRH-JFK:3:flight.updated"
    ) == 1
