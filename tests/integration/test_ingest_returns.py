"""MVT RR and FR change the flight as AHM 780 means them, not only its remarks: a return to the
ramp withdraws the departure (a new AD follows), a forced return after take-off ends the flight
back at its airport of departure. Applied to the hub and read back over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.flights.hub import FlightHub
from jetbridge.flights.ingest import ingest
from support.auth import as_operator

RECEIVED = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
KEY = "LX0318-2026-03-14-ZRH-LHR"


def telex(stamp: str, *lines: str) -> str:
    """An MVT from Zurich's station, its originator time `stamp` (DDHHMM) ordering the updates."""
    return "\n".join(["QU HDQOOLX", f".ZRHKOLX {stamp}", "MVT", "LX318/14.HBJLA.ZRH", *lines])


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=sqlite_url, run_workers=False))
    with TestClient(app) as client:
        as_operator(client)
        yield client


def push(client: TestClient, text: str) -> dict[str, Any]:
    hub = FlightHub(client.app.state.platform.backbone)  # type: ignore[attr-defined]
    result = ingest(hub, "mvt", text, received_at=RECEIVED, origin="test")
    assert result.refused == [], result.refused
    flight = client.get(f"/api/flights/{KEY}")
    assert flight.status_code == 200, flight.text
    body: dict[str, Any] = flight.json()
    return body


def actual(flight: dict[str, Any], milestone: str) -> str | None:
    value: str | None = flight.get("times", {}).get(milestone, {}).get("actual")
    return value


def test_return_to_ramp_withdraws_the_departure_until_the_next_ad(client: TestClient) -> None:
    left = push(client, telex("140806", "AD0805 EA0930 LHR"))
    assert left["status"] == "departed"
    assert actual(left, "off_block") == "2026-03-14T08:05:00Z"

    back = push(client, telex("140821", "RR0820", "SI HYDRAULIC LEAK"))
    assert back["status"] == "delayed"
    assert actual(back, "off_block") is None
    assert actual(back, "take_off") is None
    assert back["remarks"] == "returned to ramp 08:20Z / HYDRAULIC LEAK"

    again = push(client, telex("140919", "AD0910/0918 EA1030 LHR"))
    assert again["status"] == "departed"
    assert actual(again, "off_block") == "2026-03-14T09:10:00Z"
    assert actual(again, "take_off") == "2026-03-14T09:18:00Z"


def test_a_late_return_to_ramp_does_not_undo_a_newer_departure(client: TestClient) -> None:
    push(client, telex("140806", "AD0805 EA0930 LHR"))
    push(client, telex("140919", "AD0910/0918 EA1030 LHR"))
    stale = push(client, telex("140821", "RR0820"))  # sent before the new AD, arriving after
    assert stale["status"] == "departed"
    assert actual(stale, "off_block") == "2026-03-14T09:10:00Z"


def test_forced_return_ends_the_flight_back_at_its_origin(client: TestClient) -> None:
    push(client, telex("140920", "AD0910/0918 EA1030 LHR"))
    returned = push(client, telex("141001", "FR0950/1000"))
    assert returned["status"] == "diverted"
    assert returned["diversion_airport"] == "ZRH"
    assert actual(returned, "touchdown") == "2026-03-14T09:50:00Z"
    assert actual(returned, "on_block") == "2026-03-14T10:00:00Z"
    assert actual(returned, "off_block") == "2026-03-14T09:10:00Z"  # it did leave
    assert returned["remarks"] == "returned from airborne 09:50Z/10:00Z"


def test_forced_return_with_the_on_block_time_only(client: TestClient) -> None:
    push(client, telex("140920", "AD0910/0918 EA1030 LHR"))
    returned = push(client, telex("141001", "FR/1000"))
    assert returned["status"] == "diverted"
    assert actual(returned, "touchdown") is None
    assert actual(returned, "on_block") == "2026-03-14T10:00:00Z"
