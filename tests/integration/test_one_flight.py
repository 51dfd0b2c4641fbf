"""One flight identity: a published schedule makes each leg both a hub flight (on the board) and
a sellable flight (in search), codeshare numbers sell the operating leg, and the bookings on a
hub flight are found from its identity."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from jetbridge.app import create_app
from jetbridge.booking.catalog import ScheduleEntry
from jetbridge.booking.manifest import bookings_on_flight
from jetbridge.config import Settings
from jetbridge.flights.model import FlightIdentity
from jetbridge.payments.test_provider import APPROVE, create_test_provider
from jetbridge.schedules import publish_schedule
from jetbridge.storage.schema import events
from support.aodb import LegacyAodb
from support.auth import as_operator, bearer
from support.servers import serve_app
from support.ssim import leg, segment, ssim_file

DAY = (datetime.now(UTC) + timedelta(days=30)).date()
KEY = f"LX0318-{DAY.isoformat()}-ZRH-LHR"


def entry(**change: Any) -> ScheduleEntry:
    departure = datetime(DAY.year, DAY.month, DAY.day, 6, 40, tzinfo=UTC)
    fields: dict[str, Any] = {
        "airline": "LX", "flight_number": "318", "origin": "ZRH", "destination": "LHR",
        "departure": departure, "arrival": departure + timedelta(minutes=105),
        "aircraft_type": "A320", "currency": "CHF", "fares": {"economy": 15_000},
        "terminal": "1", "arrival_terminal": "2", "codeshares": ["LH5790", "SN3418"],
    }  # fmt: skip
    return ScheduleEntry.model_validate(fields | change)


@pytest.fixture
def platform(database_url: str) -> Iterator[tuple[TestClient, Any]]:
    with serve_app(create_test_provider()) as provider_url:
        settings = Settings(
            database_url=database_url, payments_url=provider_url, delivery_poll_seconds=0.05
        )
        app = create_app(settings)
        with TestClient(app) as client:
            as_operator(client)
            yield client, app.state.platform


def test_a_published_leg_is_on_the_board_and_for_sale(platform: tuple[TestClient, Any]) -> None:
    client, core = platform
    published = publish_schedule(core.backbone, [entry()])
    assert published.flight_keys == [KEY]
    assert published.sellable_added == 1
    hub = client.get(f"/api/flights/{KEY}").json()
    assert hub["flight"] == "LX318"
    assert hub["times"]["off_block"]["scheduled"] == f"{DAY.isoformat()}T06:40:00Z"
    assert hub["terminal"] == "1"
    assert hub["codeshares"] == "LH5790,SN3418"
    board = client.get(f"/api/fids/ZRH/departures?date={DAY.isoformat()}").json()
    assert KEY in [row["flight_key"] for row in _rows(board)]
    found = client.get(
        "/api/flights/search",
        params={"origin": "ZRH", "destination": "LHR", "date": DAY.isoformat()},
    ).json()
    assert [(o["flight_id"], o["flight_key"]) for o in found] == [
        (f"LX0318-{DAY.isoformat()}", KEY)
    ]
    assert found[0]["codeshares"] == ["LH5790", "SN3418"]


def _ssim_day(day: Any) -> str:
    return str(day.strftime("%d%b%y").upper())


def test_an_ssim_file_pushed_once_makes_board_flights_and_inventory(
    platform: tuple[TestClient, Any],
) -> None:
    client, _ = platform
    feed = bearer(client.app, roles=("service",), tenant="LX")
    text = ssim_file(
        leg(first=_ssim_day(DAY), last=_ssim_day(DAY + timedelta(days=1))),
        segment("010", "LH 5790"),
        leg(number="0999", service="F", first=_ssim_day(DAY), last=_ssim_day(DAY)),
    )
    response = client.post(
        "/api/schedules/ssim", params={"currency": "CHF"}, content=text, headers=feed
    )
    assert response.status_code == 200, response.text
    assert response.json()["legs"] == 2  # the cargo leg is not sold
    board = client.get(f"/api/fids/ZRH/departures?date={DAY.isoformat()}").json()
    assert KEY in [r["flight_key"] for r in _rows(board)]
    found = client.get(
        "/api/flights/search",
        params={"origin": "ZRH", "destination": "LHR", "date": DAY.isoformat()},
    ).json()
    assert [o["flight_key"] for o in found] == [KEY]
    assert found[0]["departure"] == f"{DAY.isoformat()}T06:40:00+00:00"
    assert found[0]["cabins"]["economy"]["fare"]["currency"] == "CHF"
    assert found[0]["codeshares"] == ["LH5790"]


def test_an_airline_publishes_only_the_legs_it_operates(
    platform: tuple[TestClient, Any],
) -> None:
    client, _ = platform
    other = bearer(client.app, roles=("service",), tenant="BA")
    text = ssim_file(leg(first=_ssim_day(DAY), last=_ssim_day(DAY)))
    refused = client.post("/api/schedules/ssim", content=text, headers=other)
    assert refused.status_code == 403
    assert refused.json()["message"].startswith(f"{KEY}: operated by LX; airline BA")
    assert client.get(f"/api/flights/{KEY}").status_code == 404


def test_an_ssm_defining_legs_makes_board_flights_and_inventory(
    platform: tuple[TestClient, Any],
) -> None:
    client, _ = platform
    ssm = "\n".join(["SSM", "LT", "NEW", "LX318",
                     f"{_ssim_day(DAY)} {_ssim_day(DAY + timedelta(days=2))} 1234567",
                     "J 320", "ZRH0740 LHR0825", ""])  # fmt: skip
    response = client.post("/api/schedules/asm", params={"currency": "CHF"}, content=ssm)
    assert response.status_code == 200, response.text
    assert response.json()["legs"] == 3
    hub = client.get(f"/api/flights/{KEY}").json()
    assert (hub["aircraft_type"], hub["times"]["off_block"]["scheduled"]) == (
        "A320", f"{DAY.isoformat()}T06:40:00Z",
    )  # fmt: skip
    found = client.get(
        "/api/flights/search",
        params={"origin": "ZRH", "destination": "LHR", "date": DAY.isoformat()},
    ).json()
    assert [o["flight_key"] for o in found] == [KEY]
    change = "\n".join(["ASM", "UTC", "TIM", f"LX318/{_ssim_day(DAY)}", "ZRH0700 LHR0845", ""])
    refused = client.post("/api/schedules/asm", content=change)
    assert refused.status_code == 400
    assert "only messages that define legs" in refused.json()["message"]
    assert "/api/ingest/asm" in refused.json()["message"]


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        ("ssim", leg(std="2460"), "line 4, column 40: time must be HHMM at '2460'"),
        ("ssim", "3" * 201, "records are 200 characters"),
        ("json", '[{"airline": "LX"}]', "0.flight_number: Field required"),
        ("json", "{", "Invalid JSON"),
    ],
)
def test_a_malformed_schedule_is_refused_whole_with_where(
    platform: tuple[TestClient, Any], kind: str, body: str, message: str
) -> None:
    client, core = platform
    payload = ssim_file(body) if kind == "ssim" and len(body) == 200 else body
    response = client.post(f"/api/schedules/{kind}", content=payload)
    assert response.status_code == 400
    assert message in response.json()["message"]
    with core.backbone.reading() as conn:
        assert bookings_on_flight(conn, KEY) == []
    assert client.get(f"/api/flights/{KEY}").status_code == 404


def _rows(board: Any) -> list[dict[str, Any]]:
    return list(board["flights"] if isinstance(board, dict) else board)


def test_publishing_again_changes_nothing(platform: tuple[TestClient, Any]) -> None:
    _, core = platform
    publish_schedule(core.backbone, [entry()])
    again = publish_schedule(core.backbone, [entry()])
    assert (again.sellable_added, again.hub_changed) == (0, [])


def test_a_codeshare_number_sells_the_operating_flight(platform: tuple[TestClient, Any]) -> None:
    client, core = platform
    publish_schedule(core.backbone, [entry()])
    offer = client.get(f"/api/flights/LH5790-{DAY.isoformat()}/offer").json()
    assert offer["flight_id"] == f"LX0318-{DAY.isoformat()}"
    assert offer["flight_key"] == KEY
    booking = _book(client, f"LH5790-{DAY.isoformat()}", "codeshare-0001")
    assert booking["flight_id"] == f"LX0318-{DAY.isoformat()}"
    with core.backbone.reading() as conn:
        body = conn.execute(
            select(events.c.body).where(
                events.c.type == "booking.requested",
                events.c.partition_key == booking["booking_id"],
            )
        ).scalar_one()
    assert json.loads(body)["data"]["flight_key"] == KEY


def test_flight_status_finds_a_codeshare_number_on_its_operating_leg(
    platform: tuple[TestClient, Any],
) -> None:
    client, core = platform
    publish_schedule(core.backbone, [entry()])
    for number in ("LH5790", "lh 5790", "SN3418"):
        legs = client.get("/api/flights/status", params={"flight": number, "date": DAY.isoformat()})
        assert legs.status_code == 200, legs.text
        assert [leg["flight_key"] for leg in legs.json()] == [KEY]
        assert legs.json()[0]["codeshares"] == "LH5790,SN3418"
    assert (
        client.get(
            "/api/flights/status", params={"flight": "LX318", "date": DAY.isoformat()}
        ).json()[0]["flight_key"]
        == KEY
    )
    missing = client.get("/api/flights/status", params={"flight": "LH579", "date": DAY.isoformat()})
    assert missing.status_code == 404
    assert "LH579" in missing.json()["message"]
    for hostile in ("LH%", "LH_790", "LX 1 2", "' OR 1=1", "LH5790\u0000"):
        refused = client.get(
            "/api/flights/status", params={"flight": hostile, "date": DAY.isoformat()}
        )
        assert refused.status_code in {400, 422}, (hostile, refused.text)
    other_day = (DAY + timedelta(days=1)).isoformat()
    assert (
        client.get("/api/flights/status", params={"flight": "LH5790", "date": other_day})
    ).status_code == 404


def test_bookings_on_flight_lists_confirmed_bookings_with_tickets(
    platform: tuple[TestClient, Any],
) -> None:
    client, core = platform
    publish_schedule(core.backbone, [entry(), entry(flight_number="320")])
    first = _settled(client, _book(client, f"LX0318-{DAY.isoformat()}", "manifest-0001", 2))
    _settled(client, _book(client, f"LX0320-{DAY.isoformat()}", "manifest-0002"))
    identity = FlightIdentity.create(
        airline="LX", flight_number="318", origin_date=DAY,
        departure_airport="ZRH", arrival_airport="LHR",
    )  # fmt: skip
    with core.backbone.reading() as conn:
        anonymous = bookings_on_flight(conn, identity)
        named = bookings_on_flight(conn, KEY, personal=core.bookings.personal)
        nobody = bookings_on_flight(conn, f"LX0999-{DAY.isoformat()}-ZRH-LHR")
    assert [b.booking_id for b in anonymous] == [first["booking_id"]]
    assert anonymous[0].flight_key == KEY
    passengers = anonymous[0].passengers
    assert len({p.seat for p in passengers}) == 2 and all(p.seat for p in passengers)
    assert all(len(p.ticket_number or "") == 13 and p.family_name is None for p in passengers)
    assert [p.family_name for p in named[0].passengers] == ["Lovelace0", "Lovelace1"]
    assert nobody == []


def test_aodb_changes_show_on_the_booking_in_local_time(
    platform: tuple[TestClient, Any], tmp_path: Path
) -> None:
    client, core = platform
    entries = [entry()]
    publish_schedule(core.backbone, entries)
    booking = _settled(client, _book(client, f"LX0318-{DAY.isoformat()}", "aodb-0001"))
    status = booking["flight_status"]
    assert booking["flight_key"] == KEY
    assert (status["status"], status["gate"], status["terminal"]) == ("scheduled", None, "1")
    departure = status["departure"]
    assert departure["scheduled"] == f"{DAY.isoformat()}T06:40:00Z"
    assert departure["scheduled_local"]["clock"] == "07:40"
    assert departure["scheduled_local"]["zone"] == "Europe/Zurich"
    assert departure["scheduled_local"]["abbreviation"] == "CET"
    assert status["arrival"]["scheduled_local"]["clock"] == "08:25"  # London, GMT
    aodb = LegacyAodb(tmp_path, core.backbone, entries)
    try:
        mvt = aodb.movement_id("LX", "318")

        def flight() -> dict[str, Any]:
            got = client.get(f"/api/bookings/{booking['booking_id']}").json()
            return dict(got["flight_status"])

        aodb.change(mvt, GATE="B34")
        aodb.capture_until(lambda: flight()["gate"] == "B34")
        late = datetime.fromisoformat(departure["scheduled"]) + timedelta(minutes=35)
        aodb.change(mvt, ETD_UTC=late, FLT_STATUS="DLY", DLY_CODE1="93", DLY_MIN1=35)
        aodb.capture_until(lambda: flight()["delay_minutes"] == 35)
        delayed = flight()
        assert delayed["status"] == "delayed"
        assert delayed["departure"]["estimated_local"]["clock"] == "08:15"
        aodb.change(mvt, FLT_STATUS="CNL", REMARK="CANCELLED")
        aodb.capture_until(lambda: flight()["cancelled"])
        mine = client.get(f"/api/customers/{booking['customer_id']}/bookings").json()
        assert mine[0]["flight_status"]["status"] == "cancelled"
        # a cancelled flight is no longer sold
        assert (
            client.get(
                "/api/flights/search",
                params={"origin": "ZRH", "destination": "LHR", "date": DAY.isoformat()},
            ).json()
            == []
        )
        offer = client.get(f"/api/flights/LX0318-{DAY.isoformat()}/offer").json()
        assert offer["status"] == "cancelled"
        body = {
            "flight_id": f"LX0318-{DAY.isoformat()}", "cabin": "economy", "customer_id": "c2",
            "passengers": [{"given_name": "Ada", "family_name": "Byron"}],
            "payment": {"card": APPROVE},
        }  # fmt: skip
        late = client.post("/api/bookings", json=body, headers={"Idempotency-Key": "aodb-0002"})
        assert late.status_code == 409
        assert "is cancelled; it is not for sale" in late.json()["message"]
    finally:
        aodb.close()


def _book(client: TestClient, flight_id: str, key: str, passengers: int = 1) -> dict[str, Any]:
    body = {
        "flight_id": flight_id, "cabin": "economy", "customer_id": "cust-1",
        "passengers": [{"given_name": "Ada", "family_name": f"Lovelace{n}"} for n in range(passengers)],
        "payment": {"card": APPROVE},
    }  # fmt: skip
    response = client.post("/api/bookings", json=body, headers={"Idempotency-Key": key})
    assert response.status_code == 202, response.text
    return dict(response.json())


def _settled(client: TestClient, booking: dict[str, Any]) -> dict[str, Any]:
    deadline = time.time() + 60
    while time.time() < deadline:
        state = client.get(f"/api/bookings/{booking['booking_id']}").json()
        if state["status"] in {"confirmed", "failed", "cancelled"}:
            assert state["status"] == "confirmed", state
            return dict(state)
        time.sleep(0.05)
    raise AssertionError("the booking did not settle")


def test_the_migration_gives_existing_sellable_flights_their_hub_key(database_url: str) -> None:
    from sqlalchemy import text

    from jetbridge.storage.db import create_database_engine
    from jetbridge.storage.migrate import downgrade, upgrade

    engine = create_database_engine(database_url)
    upgrade(engine, "0010")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO scheduled_flights (flight_id, airline, flight_number, origin, "
                "destination, departure_date, departs_at, arrives_at, aircraft_type, currency, "
                "fares) VALUES ('LX0100-2026-12-01', 'LX', '100', 'ZRH', 'LHR', '2026-12-01', "
                "1.0, 2.0, 'A320', 'CHF', '{\"economy\": 10000}')"
            )
        )
    upgrade(engine)
    with engine.connect() as conn:
        key = conn.execute(text("SELECT flight_key FROM scheduled_flights")).scalar_one()
    assert key == "LX0100-2026-12-01-ZRH-LHR"
    downgrade(engine, "0010")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT flight_id FROM scheduled_flights")).scalar_one()
    engine.dispose()
