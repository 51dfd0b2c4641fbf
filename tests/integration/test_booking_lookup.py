"""A guest finds a booking by record locator and family name: the booking if the name is one of
its travellers', else the same 404 whether the locator exists or not; hostile input is a 4xx."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.booking.service import BookingRequest, Passenger, TravelDocument
from jetbridge.config import Settings
from jetbridge.payments.test_provider import APPROVE, create_test_provider
from support.servers import serve_app

DAY = (datetime.now(UTC) + timedelta(days=45)).date()
PASSPORT = "X9Q4417B2"
COMPOSED = unicodedata.normalize("NFC", "Müller-Lüdenscheidt")
DECOMPOSED = unicodedata.normalize("NFD", COMPOSED)
NOT_FOUND = {
    "error": "NotFound",
    "message": "no booking matches that record locator and family name",
}


def serve(url: str) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    """A platform with one booking of two travellers; yields a client and the booking."""
    with serve_app(create_test_provider()) as provider:
        app = create_app(Settings(database_url=url, payments_url=provider, run_workers=False))
        with TestClient(app, raise_server_exceptions=False) as client:
            platform = app.state.platform
            with platform.backbone.transaction() as conn:
                import_schedule(conn, demo_schedule(start=DAY, days=1))
            document = TravelDocument(number=PASSPORT, country="GBR", expires="2031-05-01")
            request = BookingRequest(
                flight_id=f"LX0100-{DAY.isoformat()}", cabin="economy", customer_id="guest-1",
                passengers=[
                    Passenger(given_name="Ada", family_name="Lovelace", document=document),
                    Passenger(given_name="Hans", family_name=COMPOSED),
                ],
            )  # fmt: skip
            booking, _ = platform.bookings.create(
                request=request, card=APPROVE, caller="anonymous", idempotency_key="lookup-0001"
            )
            yield client, booking


@pytest.fixture
def booked(database_url: str) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    yield from serve(database_url)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    path: Path = tmp_path_factory.mktemp("lookup") / "jetbridge.db"
    yield from serve(f"sqlite:///{path}")


def lookup(client: TestClient, locator: Any, family_name: Any) -> Any:
    return client.post(
        "/api/bookings/lookup", json={"locator": locator, "family_name": family_name}
    )


@pytest.mark.parametrize(
    ("locator_case", "family_name"),
    [
        (str.upper, "Lovelace"),
        (str.lower, "LOVELACE"),
        (str.upper, "  lovelace "),
        (str.upper, COMPOSED),
        (str.lower, DECOMPOSED.upper()),
        (str.upper, "müller-lüdenscheidt"),
    ],
)
def test_a_travellers_family_name_finds_the_booking(
    booked: tuple[TestClient, dict[str, Any]], locator_case: Any, family_name: str
) -> None:
    client, booking = booked
    found = lookup(client, locator_case(booking["locator"]), family_name)
    assert found.status_code == 200, found.text
    shown = found.json()
    assert shown["booking_id"] == booking["booking_id"]
    assert shown["locator"] == booking["locator"]
    assert shown["flight_id"] == booking["flight_id"] and shown["status"] == "requested"
    assert [p["family_name"] for p in shown["passengers"]] == ["Lovelace", COMPOSED]
    assert shown["passengers"][0]["document"]["number"] == "******7B2"
    assert PASSPORT not in found.text
    assert "customer_id" not in shown and "guest-1" not in found.text


def test_a_wrong_name_and_an_unknown_locator_get_the_same_answer(
    booked: tuple[TestClient, dict[str, Any]],
) -> None:
    client, booking = booked
    unknown = "ZZZZZZ" if booking["locator"] != "ZZZZZZ" else "YYYYYY"
    answers = [
        lookup(client, booking["locator"], "Byron"),
        lookup(client, booking["locator"], "Lovelac"),
        lookup(client, booking["locator"], "Ada"),  # a given name is not a family name
        lookup(client, unknown, "Lovelace"),
        lookup(client, "ABCDE0", "Lovelace"),  # 0 is never in a locator
    ]
    for answer in answers:
        assert (answer.status_code, answer.json()) == (404, NOT_FOUND)
        assert answer.headers["content-length"] == answers[0].headers["content-length"]


HUGE = "L" * 200_000


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({}, "locator"),
        ({"locator": "ABC234"}, "family_name"),
        ({"family_name": "Lovelace"}, "locator"),
        ({"locator": 123456, "family_name": "Lovelace"}, "locator"),
        ({"locator": ["ABC234"], "family_name": "Lovelace"}, "locator"),
        ({"locator": None, "family_name": "Lovelace"}, "locator"),
        ({"locator": {"$ne": ""}, "family_name": "Lovelace"}, "locator"),
        ({"locator": True, "family_name": "Lovelace"}, "locator"),
        ({"locator": "ABC234", "family_name": 42}, "family_name"),
        ({"locator": "ABC234", "family_name": ["Lovelace"]}, "family_name"),
        ({"locator": "ABC234", "family_name": {"$regex": ".*"}}, "family_name"),
        ({"locator": "ABC234", "family_name": ""}, "family_name"),
        ({"locator": "ABC23", "family_name": "Lovelace"}, "locator"),
        ({"locator": "ABC2345", "family_name": "Lovelace"}, "locator"),
        ({"locator": "ABC23'", "family_name": "Lovelace"}, "locator"),
        ({"locator": "ÄBC234", "family_name": "Lovelace"}, "locator"),
        ({"locator": "\uff21\uff22\uff23\uff12\uff13\uff14", "family_name": "Lovelace"}, "locator"),
        ({"locator": "ABC234\n", "family_name": "Lovelace"}, "locator"),
        ({"locator": HUGE, "family_name": "Lovelace"}, "locator"),
        ({"locator": "ABC234", "family_name": HUGE}, "family_name"),
        ({"locator": "ABC234", "family_name": "Love\x00lace"}, "family_name"),
        ({"locator": "ABC234", "family_name": "<script>alert(1)</script>"}, "family_name"),
        ({"locator": "ABC234", "family_name": "Lovelace", "customer_id": "x"}, "customer_id"),
    ],
)
def test_hostile_lookups_get_a_422_naming_the_field_and_never_echo_the_name(
    shared: tuple[TestClient, dict[str, Any]], payload: dict[str, Any], where: str
) -> None:
    client, _ = shared
    answer = client.post("/api/bookings/lookup", json=payload)
    assert answer.status_code == 422, answer.text
    assert where in answer.json()["message"]
    assert "Lovelace" not in answer.text and "<script>" not in answer.text


@pytest.mark.parametrize(
    "family_name",
    ["\u202eecalevoL", "🛫✈️", "' OR 1=1 --", "Lovelace%", "*", "ß" * 64, "\u0130stanbul"],
)
def test_odd_but_valid_names_are_looked_up_and_not_found(
    shared: tuple[TestClient, dict[str, Any]], family_name: str
) -> None:
    client, booking = shared
    answer = lookup(client, booking["locator"], family_name)
    assert (answer.status_code, answer.json()) == (404, NOT_FOUND)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"{not json", 400),
        (b"[]", 422),
        (b'"ABC234"', 422),
        (b"null", 422),
        (b'{"locator": "ABC234", "family_name": "\\ud800"}', 400),
        (json.dumps({"locator": "ABC234", "family_name": "x" * 5_000_000}).encode(), 413),
    ],
)
def test_malformed_bodies_are_refused(
    shared: tuple[TestClient, dict[str, Any]], raw: bytes, status: int
) -> None:
    client, _ = shared
    answer = client.post(
        "/api/bookings/lookup", content=raw, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == status, answer.text


def test_the_lookup_is_not_offered_in_the_url(shared: tuple[TestClient, dict[str, Any]]) -> None:
    client, booking = shared
    answer = client.get(
        "/api/bookings/lookup", params={"locator": booking["locator"], "family_name": "Lovelace"}
    )
    assert answer.status_code == 404
    assert booking["booking_id"] not in answer.text
