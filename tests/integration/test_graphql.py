"""GraphQL: search flights, processBooking, follow its status by subscription, loyalty; every
field checks its caller as the REST route it mirrors does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.config import Settings
from jetbridge.payments.test_provider import APPROVE, create_test_provider
from support.auth import as_operator, bearer
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
        'query($d: Date!) { flights(origin: "ZRH", destination: "LHR", day: $d) { flightId } }',
        d=DAY.isoformat(),
    )
    flight_id = found["data"]["flights"][0]["flightId"]  # type: ignore[index]
    mutation = """mutation($b: BookingInput!, $k: String!) { processBooking(booking: $b, idempotencyKey: $k) { bookingId locator status customerId guestToken } }"""
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
        query = "subscription($id: String!) { bookingStatus(bookingId: $id) { status } }"
        socket.send_json(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": query, "variables": {"id": created["bookingId"]}},
            }
        )
        while True:
            message = socket.receive_json()
            if message["type"] == "complete":
                break
            statuses.append(message["payload"]["data"]["bookingStatus"]["status"])
    assert statuses[-1] == "confirmed"
    loyalty = gql(client, '{ loyalty(customerId: "gql-1") { points tier } }')["data"]["loyalty"]  # type: ignore[index]
    assert loyalty["points"] > 0


def test_graphql_errors_are_reported_not_crashes(client: TestClient) -> None:
    missing = gql(client, '{ booking(bookingId: "nope") { status } }')
    assert missing["errors"][0]["message"]  # type: ignore[index]
    broken = client.post("/graphql", json={"query": "{ flights("})
    assert broken.status_code in {200, 400}
    assert "errors" in broken.json()


def test_process_booking_keys_repeat_the_booking_and_refuse_another_request(
    client: TestClient,
) -> None:
    mutation = """mutation($b: BookingInput!, $k: String!) { processBooking(booking: $b, idempotencyKey: $k) { bookingId locator status customerId guestToken } }"""
    booking = {
        "flightId": f"LX0100-{DAY.isoformat()}",
        "cabin": "economy",
        "customerId": "gql-2",
        "passengers": [{"givenName": "Grace", "familyName": "Hopper"}],
        "card": APPROVE,
    }
    first = gql(client, mutation, b=booking, k="graphql-key-0002")["data"]["processBooking"]  # type: ignore[index]
    again = gql(client, mutation, b=booking, k="graphql-key-0002")["data"]["processBooking"]  # type: ignore[index]
    assert again["bookingId"] == first["bookingId"]
    other = booking | {"passengers": [{"givenName": "Ada", "familyName": "Lovelace"}]}
    refused = gql(client, mutation, b=other, k="graphql-key-0002")
    assert refused["data"] is None
    message = refused["errors"][0]["message"]  # type: ignore[index]
    assert message.startswith("Idempotency-Key: ")
    assert first["locator"] not in str(refused) and "Hopper" not in str(refused)


BOOKING_QUERY = (
    "query($id: String!, $t: String) { booking(bookingId: $id, guestToken: $t) { status } }"
)
LOYALTY_QUERY = "query($c: String!) { loyalty(customerId: $c) { points } }"
MUTATION = (
    "mutation($b: BookingInput!, $k: String!) { processBooking(booking: $b, idempotencyKey: $k)"
    " { bookingId locator status customerId guestToken } }"
)


def ask(client: TestClient, query: str, headers: dict[str, str], **variables: object) -> Any:
    response = client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_every_graphql_field_checks_its_caller_as_rest_does(client: TestClient) -> None:
    """GraphQL operations x callers: a guest, the booking's passenger, another passenger, the
    airline's agent, another airline's agent, anonymous."""
    app = client.app
    anonymous = {"Authorization": ""}
    for name in ("ada", "grace"):
        client.post("/api/auth/register", json={"username": name, "password": "long passphrase"})
    tokens = {
        name: client.post(
            "/api/auth/token",
            data={"grant_type": "password", "username": name, "password": "long passphrase"},
        ).json()["access_token"]
        for name in ("ada", "grace")
    }
    ada = {"Authorization": f"Bearer {tokens['ada']}"}
    grace = {"Authorization": f"Bearer {tokens['grace']}"}
    agent_lx = bearer(app, roles=("agent",), tenant="LX")
    agent_ba = bearer(app, roles=("agent",), tenant="BA")
    found = ask(client, 'query($d: Date!) { flights(origin: "ZRH", destination: "LHR", day: $d) { flightId } }',
                anonymous, d=DAY.isoformat())  # fmt: skip
    flight_id = found["data"]["flights"][0]["flightId"]
    booking = {"flightId": flight_id, "cabin": "economy", "card": APPROVE,
               "passengers": [{"givenName": "Ada", "familyName": "Lovelace"}]}  # fmt: skip
    mine = ask(client, MUTATION, ada, b=booking, k="gql-ada-00001")["data"]["processBooking"]
    guest = ask(client, MUTATION, anonymous, b=booking, k="gql-guest-0001")["data"][
        "processBooking"
    ]
    assert guest["guestToken"] and mine["guestToken"] is None
    forged = ask(
        client, MUTATION, ada, b={**booking, "customerId": "someone-else"}, k="gql-ada-00002"
    )
    assert forged["data"] is None and "own account" in forged["errors"][0]["message"]

    def sees(headers: dict[str, str], booking_id: str, token: str | None = None) -> bool:
        answer = ask(client, BOOKING_QUERY, headers, id=booking_id, t=token)
        return answer.get("data") is not None and answer["data"]["booking"] is not None

    matrix = {
        ("ada", "own"): (ada, mine["bookingId"], None, True),
        ("grace", "ada's"): (grace, mine["bookingId"], None, False),
        ("anonymous", "ada's"): (anonymous, mine["bookingId"], None, False),
        ("agent LX", "LX booking"): (agent_lx, mine["bookingId"], None, True),
        ("agent BA", "LX booking"): (agent_ba, mine["bookingId"], None, False),
        ("guest", "own with token"): (anonymous, guest["bookingId"], guest["guestToken"], True),
        ("guest", "own, no token"): (anonymous, guest["bookingId"], None, False),
        ("guest", "ada's with own token"): (
            anonymous,
            mine["bookingId"],
            guest["guestToken"],
            False,
        ),
    }
    wrong = [who for who, (h, b, t, allowed) in matrix.items() if sees(h, b, t) != allowed]
    assert not wrong, wrong
    ada_customer = mine["customerId"]
    assert ask(client, LOYALTY_QUERY, ada, c=ada_customer)["data"] is not None
    assert ask(client, LOYALTY_QUERY, grace, c=ada_customer)["data"] is None
    assert ask(client, LOYALTY_QUERY, anonymous, c=ada_customer)["data"] is None
    # the subscription checks its caller too
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"],
                                  headers=grace) as socket:  # fmt: skip
        socket.send_json({"type": "connection_init"})
        assert socket.receive_json()["type"] == "connection_ack"
        socket.send_json({"id": "1", "type": "subscribe", "payload": {
            "query": "subscription($id: String!) { bookingStatus(bookingId: $id) { status } }",
            "variables": {"id": mine["bookingId"]}}})  # fmt: skip
        answer = socket.receive_json()
        assert answer["type"] == "error" or answer["payload"].get("errors"), answer


def test_an_airline_sees_only_its_own_customers_loyalty(client: TestClient) -> None:
    app = client.app
    found = client.get("/api/flights/search",
                       params={"origin": "ZRH", "destination": "LHR", "date": DAY.isoformat()}).json()  # fmt: skip
    lx_flight = next(f["flight_id"] for f in found if f["flight_id"].startswith("LX"))
    body = {"flight_id": lx_flight, "cabin": "economy", "customer_id": "loyal-1",
            "passengers": [{"given_name": "Ada", "family_name": "Lovelace"}],
            "payment": {"card": APPROVE}}  # fmt: skip
    lx = bearer(app, roles=("agent",), tenant="LX")
    booked = client.post(
        "/api/bookings", json=body, headers={**lx, "Idempotency-Key": "loyal-key-01"}
    )
    assert booked.status_code == 202, booked.text
    assert client.get("/api/customers/loyal-1/loyalty", headers=lx).status_code == 200
    ba = bearer(app, roles=("agent",), tenant="BA")
    assert client.get("/api/customers/loyal-1/loyalty", headers=ba).status_code == 404
    assert client.get("/api/customers/loyal-1/bookings", headers=ba).json() == []
    answer = ask(client, LOYALTY_QUERY, ba, c="loyal-1")
    assert answer["data"] is None
