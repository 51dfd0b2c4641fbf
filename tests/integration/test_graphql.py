"""GraphQL: search flights, processBooking, follow its status by subscription, loyalty."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.config import Settings
from jetbridge.payments.test_provider import APPROVE, create_test_provider
from support.auth import as_operator
from support.servers import serve_app

DAY = (datetime.now(UTC) + timedelta(days=25)).date()


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    with serve_app(create_test_provider()) as provider:
        app = create_app(Settings(database_url=sqlite_url, payments_url=provider))
        with TestClient(app) as test_client:
            as_operator(test_client)
            with app.state.platform.backbone.transaction() as conn:
                import_schedule(conn, demo_schedule(start=DAY, days=1))
            yield test_client


def gql(client: TestClient, query: str, **variables: object) -> dict[str, object]:
    response = client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_search_book_and_follow_the_status(client: TestClient) -> None:
    found = gql(
        client,
        'query($d: Date!) { flights(origin: "ZRH", destination: "LHR", day: $d) }',
        d=DAY.isoformat(),
    )
    flight_id = found["data"]["flights"][0]["flight_id"]  # type: ignore[index]
    mutation = """mutation($b: BookingInput!, $k: String!) { processBooking(booking: $b, idempotencyKey: $k) }"""
    booking = {
        "flightId": flight_id,
        "cabin": "economy",
        "customerId": "gql-1",
        "passengers": [{"givenName": "Grace", "familyName": "Hopper"}],
        "card": APPROVE,
    }
    created = gql(client, mutation, b=booking, k="graphql-key-0001")["data"]["processBooking"]  # type: ignore[index]
    assert created["status"] == "requested"
    statuses = []
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as socket:
        socket.send_json({"type": "connection_init"})
        assert socket.receive_json()["type"] == "connection_ack"
        query = "subscription($id: String!) { bookingStatus(bookingId: $id) }"
        socket.send_json(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": query, "variables": {"id": created["booking_id"]}},
            }
        )
        while True:
            message = socket.receive_json()
            if message["type"] == "complete":
                break
            statuses.append(message["payload"]["data"]["bookingStatus"]["status"])
    assert statuses[-1] == "confirmed"
    loyalty = gql(client, '{ loyalty(customerId: "gql-1") }')["data"]["loyalty"]  # type: ignore[index]
    assert loyalty["points"] > 0


def test_graphql_errors_are_reported_not_crashes(client: TestClient) -> None:
    missing = gql(client, '{ booking(bookingId: "nope") }')
    assert missing["errors"][0]["message"]  # type: ignore[index]
    broken = client.post("/graphql", json={"query": "{ flights("})
    assert broken.status_code in {200, 400}
    assert "errors" in broken.json()


def test_process_booking_keys_repeat_the_booking_and_refuse_another_request(
    client: TestClient,
) -> None:
    mutation = """mutation($b: BookingInput!, $k: String!) { processBooking(booking: $b, idempotencyKey: $k) }"""
    booking = {
        "flightId": f"LX0100-{DAY.isoformat()}",
        "cabin": "economy",
        "customerId": "gql-2",
        "passengers": [{"givenName": "Grace", "familyName": "Hopper"}],
        "card": APPROVE,
    }
    first = gql(client, mutation, b=booking, k="graphql-key-0002")["data"]["processBooking"]  # type: ignore[index]
    again = gql(client, mutation, b=booking, k="graphql-key-0002")["data"]["processBooking"]  # type: ignore[index]
    assert again["booking_id"] == first["booking_id"]
    other = booking | {"passengers": [{"givenName": "Ada", "familyName": "Lovelace"}]}
    refused = gql(client, mutation, b=other, k="graphql-key-0002")
    assert refused["data"] is None
    message = refused["errors"][0]["message"]  # type: ignore[index]
    assert message.startswith("Idempotency-Key: ")
    assert first["locator"] not in str(refused) and "Hopper" not in str(refused)
