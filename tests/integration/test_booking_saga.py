"""Booking end to end: API -> durable saga -> seats, payment (over HTTP), tickets, loyalty, events."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.config import Settings
from jetbridge.payments.test_provider import APPROVE, DECLINE, Ledger, create_test_provider
from support.auth import as_operator
from support.servers import serve_app

DAY = (datetime.now(UTC) + timedelta(days=20)).date()
FLIGHT = f"LX0100-{DAY.isoformat()}"


@pytest.fixture
def booking(database_url: str) -> Iterator[tuple[TestClient, Ledger]]:
    ledger = Ledger(timeout_seconds=2)
    with serve_app(create_test_provider(ledger)) as provider_url:
        settings = Settings(
            database_url=database_url, payments_url=provider_url, delivery_poll_seconds=0.05
        )
        app = create_app(settings)
        with TestClient(app) as client:
            as_operator(client)
            with app.state.platform.backbone.transaction() as conn:
                import_schedule(conn, demo_schedule(start=DAY, days=1))
            yield client, ledger


def book(client: TestClient, card: str, key: str, passengers: int = 1) -> dict[str, Any]:
    body = {
        "flight_id": FLIGHT, "cabin": "economy", "customer_id": "cust-1",
        "passengers": [{"given_name": "Ada", "family_name": f"Lovelace{n}"} for n in range(passengers)],
        "payment": {"card": card},
    }  # fmt: skip
    response = client.post("/api/bookings", json=body, headers={"Idempotency-Key": key})
    assert response.status_code in {200, 202}, response.text
    return dict(response.json())


def settled(client: TestClient, booking_id: str) -> dict[str, Any]:
    deadline = time.time() + 30
    while time.time() < deadline:
        state = client.get(f"/api/bookings/{booking_id}").json()
        if state["status"] in {"confirmed", "failed", "cancelled"}:
            return dict(state)
        time.sleep(0.05)
    raise AssertionError("the booking did not settle")


def finished(client: TestClient, booking_id: str) -> dict[str, Any]:
    """The saga's execution once it has ended (it ends just after the booking settles)."""
    deadline = time.time() + 30
    while time.time() < deadline:
        execution = client.get(f"/api/workflows/executions/booking-{booking_id}").json()
        if execution["status"] != "RUNNING":
            return dict(execution)
        time.sleep(0.05)
    raise AssertionError("the saga did not end")


def seats_left(client: TestClient) -> int:
    return int(client.get(f"/api/flights/{FLIGHT}/offer").json()["cabins"]["economy"]["seats_left"])


def test_a_paid_booking_is_confirmed_ticketed_and_earns_points(
    booking: tuple[TestClient, Ledger],
) -> None:
    client, ledger = booking
    found = client.get(
        "/api/flights/search",
        params={"origin": "ZRH", "destination": "LHR", "date": DAY.isoformat()},
    ).json()
    assert found[0]["flight_id"] == FLIGHT
    before = seats_left(client)
    created = book(client, APPROVE, "key-approve-0001", passengers=2)
    assert created["status"] == "requested"
    assert len(created["locator"]) == 6
    assert (
        book(client, APPROVE, "key-approve-0001", passengers=2)["booking_id"]
        == created["booking_id"]
    )
    done = settled(client, created["booking_id"])
    assert done["status"] == "confirmed"
    assert seats_left(client) == before - 2
    execution = finished(client, created["booking_id"])
    assert execution["status"] == "SUCCEEDED"
    tickets = execution["output"]["tickets"]
    assert len(tickets) == 2 and all(len(t["ticket_number"]) == 13 for t in tickets)
    (intent,) = ledger.intents.values()
    assert intent["status"] == "succeeded"
    assert intent["amount"] == created["amount"]["amount"]
    loyalty = client.get("/api/customers/cust-1/loyalty").json()
    assert loyalty["points"] > 0
    types = {
        e["event"]["type"]
        for e in client.get("/api/buses/default/events", params={"limit": 1000}).json()
    }
    assert {
        "booking.requested",
        "payment.authorized",
        "payment.processed",
        "ticket.issued",
        "booking.confirmed",
        "inventory.updated",
        "loyalty.points_awarded",
    } <= types
    cancelled = client.post(f"/api/bookings/{created['booking_id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["refund"]["amount"] > 0
    assert client.get("/api/customers/cust-1/loyalty").json()["points"] == 0
    assert seats_left(client) == before


def test_a_declined_card_fails_the_booking_and_releases_the_seat(
    booking: tuple[TestClient, Ledger],
) -> None:
    client, ledger = booking
    before = seats_left(client)
    created = book(client, DECLINE, "key-decline-0001")
    done = settled(client, created["booking_id"])
    assert done["status"] == "failed"
    assert seats_left(client) == before
    execution = finished(client, created["booking_id"])
    assert (execution["status"], execution["error"]) == ("FAILED", "PaymentDeclined")
    assert not any(i["status"] == "succeeded" for i in ledger.intents.values())


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (
            {
                "flight_id": FLIGHT,
                "cabin": "economy",
                "customer_id": "c",
                "passengers": [{"given_name": "A", "family_name": "B"}],
                "payment": {"card": APPROVE},
            },
            {},
            422,
        ),
        (
            {
                "flight_id": FLIGHT,
                "cabin": "economy",
                "customer_id": "c",
                "passengers": [],
                "payment": {"card": APPROVE},
            },
            {"Idempotency-Key": "key-0000001"},
            422,
        ),
        (
            {
                "flight_id": FLIGHT,
                "cabin": "economy",
                "customer_id": "c",
                "passengers": [{"given_name": "A", "family_name": "B"}],
                "payment": {"card": APPROVE},
                "amount": 1,
            },
            {"Idempotency-Key": "key-0000002"},
            422,
        ),
        (
            {
                "flight_id": "LX9999-2030-01-01",
                "cabin": "economy",
                "customer_id": "c",
                "passengers": [{"given_name": "A", "family_name": "B"}],
                "payment": {"card": APPROVE},
            },
            {"Idempotency-Key": "key-0000003"},
            404,
        ),
        (
            {
                "flight_id": FLIGHT,
                "cabin": "premium",
                "customer_id": "c",
                "passengers": [{"given_name": "A", "family_name": "B"}],
                "payment": {"card": APPROVE},
            },
            {"Idempotency-Key": "key-0000004"},
            400,
        ),
        (
            {
                "flight_id": FLIGHT,
                "cabin": "economy",
                "customer_id": "c",
                "passengers": [{"given_name": "A", "family_name": "B"}],
                "payment": {"card": APPROVE},
            },
            {"Idempotency-Key": "short"},
            400,
        ),
    ],
)
def test_bad_booking_requests(
    booking: tuple[TestClient, Ledger], body: dict[str, Any], headers: dict[str, str], status: int
) -> None:
    client, _ = booking
    assert client.post("/api/bookings", json=body, headers=headers).status_code == status
