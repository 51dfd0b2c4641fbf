"""The typed GraphQL schema: the pages' whole journey (search, seat map, book with seats, refund
quote, cancel, change flight, loyalty) as mutations and queries; the REST validation, policies
and errors with codes; hostile input answered, never logged as a server error; a subscription
fed from the bus's one reader."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from jetbridge.api.graphql import schema
from jetbridge.app import create_app
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.config import Settings
from jetbridge.flights.hub import FlightHub
from jetbridge.flights.merge import Update
from jetbridge.flights.model import FlightIdentity
from jetbridge.payments.test_provider import APPROVE, DECLINE, create_test_provider
from support.servers import serve_app

DAY = (datetime.now(UTC) + timedelta(days=30)).date()
FLIGHT = f"LX0100-{DAY.isoformat()}"
LATER = f"LX0101-{DAY.isoformat()}"

BOOK = """mutation($b: BookingInput!, $k: String!) {
  processBooking(booking: $b, idempotencyKey: $k) { bookingId locator status guestToken } }"""
BOOKING = """query($id: String!, $t: String) { booking(bookingId: $id, guestToken: $t) {
  bookingId locator status cabin amount { amount currency } passengerCount
  passengers { givenName familyName seat } tickets { ticketNumber passengerIndex seat }
  flight { flightId origin destination departure { utc local zone abbreviation }
           arrival { local zone } }
  failureMessage } }"""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    path = tmp_path_factory.mktemp("graphql") / "jetbridge.db"
    with serve_app(create_test_provider()) as provider:
        settings = Settings(
            database_url=f"sqlite:///{path}", payments_url=provider, delivery_poll_seconds=0.05
        )
        app = create_app(settings)
        with TestClient(app) as test_client:
            with app.state.platform.backbone.transaction() as conn:
                import_schedule(conn, demo_schedule(start=DAY, days=1))
            yield test_client


def gql(client: TestClient, query: str, **variables: Any) -> dict[str, Any]:
    response = client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    return dict(response.json())


def book(client: TestClient, key: str, seats: list[str | None], card: str = APPROVE) -> Any:
    passengers = [
        {"givenName": "Grace", "familyName": f"Hopper{n}", "seat": seat}
        for n, seat in enumerate(seats)
    ]
    booking = {"flightId": FLIGHT, "cabin": "economy", "passengers": passengers, "card": card}
    return gql(client, BOOK, b=booking, k=key)


def settled(client: TestClient, booked: dict[str, Any]) -> dict[str, Any]:
    deadline = time.time() + 30
    while time.time() < deadline:
        answer = gql(client, BOOKING, id=booked["bookingId"], t=booked["guestToken"])
        if answer["data"]["booking"]["status"] in {"confirmed", "failed", "cancelled"}:
            return dict(answer["data"]["booking"])
        time.sleep(0.05)
    raise AssertionError("the booking did not settle")


def test_the_pages_journey_through_graphql(client: TestClient) -> None:
    found = gql(client, """query($d: Date!) { flights(origin: "ZRH", destination: "LHR", day: $d)
        { flightId departure { local zone abbreviation } fares { cabin price { amount currency }
          seatsLeft } } }""", d=DAY.isoformat())["data"]["flights"]  # fmt: skip
    assert found[0]["flightId"] == FLIGHT
    assert found[0]["departure"]["zone"] == "Europe/Zurich"
    assert {fare["cabin"] for fare in found[0]["fares"]} == {"economy", "business"}
    plan = gql(client, """query($f: String!) { seatMap(flightId: $f) { aircraftType
        cabins { cabin letters rows { row seats { seat taken } } } } }""", f=FLIGHT)  # fmt: skip
    assert plan["data"]["seatMap"]["cabins"][1]["rows"][0]["seats"][0] == {
        "seat": "5A", "taken": False,
    }  # fmt: skip
    booked = book(client, "gql-schema-0001", ["14A", "14B"])["data"]["processBooking"]
    state = settled(client, booked)
    assert state["status"] == "confirmed"
    assert [ticket["seat"] for ticket in state["tickets"]] == ["14A", "14B"]
    assert state["flight"]["arrival"]["zone"] == "Europe/London"
    moved = gql(client, """mutation($id: String!, $s: [String!]!, $t: String) {
        selectSeats(bookingId: $id, seats: $s, guestToken: $t) { tickets { seat } } }""",
        id=booked["bookingId"], s=["15C", "15D"], t=booked["guestToken"])  # fmt: skip
    assert [x["seat"] for x in moved["data"]["selectSeats"]["tickets"]] == ["15C", "15D"]
    offer = gql(client, """query($id: String!, $f: String!, $t: String) {
        changeOffer(bookingId: $id, flightId: $f, guestToken: $t) {
          paid { amount } newTotal { amount } difference { amount currency } } }""",
        id=booked["bookingId"], f=LATER, t=booked["guestToken"])["data"]["changeOffer"]  # fmt: skip
    assert offer["difference"]["amount"] == offer["newTotal"]["amount"] - offer["paid"]["amount"]
    changed = gql(client, """mutation($id: String!, $f: String!, $t: String) {
        changeFlight(bookingId: $id, flightId: $f, guestToken: $t, card: "4242424242424242")
        { flightId status tickets { ticketNumber seat } } }""",
        id=booked["bookingId"], f=LATER, t=booked["guestToken"])  # fmt: skip
    assert changed["data"]["changeFlight"]["flightId"] == LATER
    quote = gql(client, """query($id: String!, $t: String) { refundQuote(bookingId: $id,
        guestToken: $t) { refund { amount currency } rule } }""",
        id=booked["bookingId"], t=booked["guestToken"])["data"]["refundQuote"]  # fmt: skip
    cancelled = gql(client, """mutation($id: String!, $t: String) { cancelBooking(bookingId: $id,
        guestToken: $t) { status refund { amount currency } rule } }""",
        id=booked["bookingId"], t=booked["guestToken"])["data"]["cancelBooking"]  # fmt: skip
    assert cancelled["status"] == "cancelled"
    assert cancelled["refund"] == quote["refund"] and cancelled["rule"] == quote["rule"]


def test_a_declined_card_is_explained_in_plain_words(client: TestClient) -> None:
    booked = book(client, "gql-schema-0002", [None], card=DECLINE)["data"]["processBooking"]
    state = settled(client, booked)
    assert state["status"] == "failed"
    assert state["failureMessage"].startswith("Your card was declined by the bank")


@pytest.mark.parametrize(
    ("query", "variables", "code", "message"),
    [
        (
            'query($d: Date!) { flights(origin: "zrh", destination: "LHR", day: $d) { flightId } }',
            {"d": DAY.isoformat()},
            "BAD_USER_INPUT",
            "origin: should be a three-letter code in capitals, such as ZRH",
        ),
        (
            '{ flights(origin: "ZRH", destination: "LHR", day: "1899-12-31") { flightId } }',
            {},
            "BAD_USER_INPUT",
            "day: Input should be greater than or equal to",
        ),
        (
            '{ booking(bookingId: "no-such-booking") { status } }',
            {},
            "NOT_FOUND",
            "booking 'no-such-booking' does not exist",
        ),
        (
            '{ loyalty(customerId: "someone") { points } }',
            {},
            "UNAUTHENTICATED",
            "sign in",
        ),
        (
            '{ seatMap(flightId: "XX0001-2030-01-01") { aircraftType } }',
            {},
            "NOT_FOUND",
            "flight 'XX0001-2030-01-01' does not exist",
        ),
        (
            '{ changeOffer(bookingId: "x", flightId: "<script>") { flightId } }',
            {},
            "BAD_USER_INPUT",
            "flightId: should be a flight id",
        ),
        (
            '{ findBooking(locator: "' + "A" * 5000 + '", familyName: "x") { status } }',
            {},
            "BAD_USER_INPUT",
            "locator: should be the six letters and digits of the record locator",
        ),
        (
            '{ findBooking(locator: "ABC123", familyName: "a\\u0000b") { status } }',
            {},
            "BAD_USER_INPUT",
            "familyName: should be a name without control characters",
        ),
    ],
)
def test_bad_input_is_a_coded_error_in_words_and_not_logged(
    client: TestClient,
    caplog: pytest.LogCaptureFixture,
    query: str,
    variables: dict[str, Any],
    code: str,
    message: str,
) -> None:
    with caplog.at_level(logging.INFO):
        answer = gql(client, query, **variables)
    error = answer["errors"][0]
    assert error["extensions"]["code"] == code, error
    assert error["message"].startswith(message), error
    assert "^" not in error["message"] and "Traceback" not in str(answer)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_hostile_bookings_are_refused_with_the_field_named(client: TestClient) -> None:
    cases = {
        "booking.flightId: should be a flight id": {"flightId": "'; DROP TABLE bookings; --"},
        "booking.cabin: should be one of economy, premium, business or first": {"cabin": "x" * 10_000},
        "booking.passengers: List should have at least 1 item": {"passengers": []},
        "booking.passengers[0].seat: should be a seat such as 12A": {
            "passengers": [{"givenName": "A", "familyName": "B", "seat": "99Z9"}]},
        "booking.payment.card: should be a card number": {"card": "4242<img>"},
    }  # fmt: skip
    for message, change in cases.items():
        booking = {"flightId": FLIGHT, "cabin": "economy", "card": APPROVE,
                   "passengers": [{"givenName": "A", "familyName": "B"}]} | change  # fmt: skip
        answer = gql(client, BOOK, b=booking, k="gql-hostile-0001")
        assert answer["data"] is None
        error = answer["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert error["message"].startswith(message), error["message"]
    aliases = (
        "{ "
        + " ".join(
            f'a{n}: flights(origin: "ZRH", destination: "LHR", day: "{DAY}") {{ flightId }}'
            for n in range(100)
        )
        + " }"
    )
    refused = gql(client, aliases)
    assert refused["data"] is None and "aliases" in refused["errors"][0]["message"]
    assert refused["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    unknown = gql(client, "{ bookings { passwords } }")
    assert unknown["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    broken = client.post("/graphql", json={"query": "{ flights("}).json()
    assert broken["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    deeper = '{ booking(bookingId: "x") { flight { departure { utc } } } }'
    assert gql(client, deeper)["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    deep = "{ booking(bookingId: " + "[" * 3000 + '"x"' + "]" * 3000 + ") { status } }"
    response = client.post("/graphql", json={"query": deep})
    assert response.status_code in {200, 400}
    assert response.json()["errors"]


def test_subscribers_follow_the_bus_through_one_reader(client: TestClient) -> None:
    booked = book(client, "gql-schema-0003", [None])["data"]["processBooking"]
    query = """subscription($id: String!, $t: String) {
        bookingStatus(bookingId: $id, guestToken: $t) { status tickets { seat } } }"""
    variables = {"id": booked["bookingId"], "t": booked["guestToken"]}
    seen: list[list[str]] = []
    platform = client.app.state.platform  # type: ignore[attr-defined]
    with (
        client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as one,
        client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as two,
    ):
        for number, socket in enumerate((one, two)):
            socket.send_json({"type": "connection_init"})
            assert socket.receive_json()["type"] == "connection_ack"
            socket.send_json({"id": str(number), "type": "subscribe",
                              "payload": {"query": query, "variables": variables}})  # fmt: skip
        for socket in (one, two):
            statuses = []
            while True:
                message = socket.receive_json()
                if message["type"] == "complete":
                    break
                assert message["type"] == "next", message
                statuses.append(message["payload"]["data"]["bookingStatus"]["status"])
            seen.append(statuses)
    assert [statuses[-1] for statuses in seen] == ["confirmed", "confirmed"]
    assert set(platform.broadcasters) == {"default"}  # one reader of the log, not one each


def test_flight_updates_follow_the_hub(client: TestClient) -> None:
    day = DAY
    identity = FlightIdentity.create(
        airline="LX", flight_number="318", origin_date=day,
        departure_airport="ZRH", arrival_airport="LHR",
    )  # fmt: skip
    hub = FlightHub(client.app.state.platform.backbone)  # type: ignore[attr-defined]
    hub.apply_all([Update(identity, "test", datetime.now(UTC), {"gate": "A1"})])
    query = """subscription($f: String!, $d: Date) { flightUpdates(flight: $f, day: $d) {
        flight gate version status } }"""
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as socket:
        socket.send_json({"type": "connection_init"})
        assert socket.receive_json()["type"] == "connection_ack"
        socket.send_json({"id": "1", "type": "subscribe", "payload": {
            "query": query, "variables": {"f": "LX318", "d": day.isoformat()}}})  # fmt: skip
        first = socket.receive_json()["payload"]["data"]["flightUpdates"]
        assert [leg["gate"] for leg in first] == ["A1"]
        hub.apply_all([Update(identity, "test", datetime.now(UTC), {"gate": "B7"})])
        second = socket.receive_json()["payload"]["data"]["flightUpdates"]
        assert [leg["gate"] for leg in second] == ["B7"]
        assert second[0]["version"] > first[0]["version"]
        socket.send_json({"id": "1", "type": "complete"})
    unknown = gql(client, '{ flightStatus(flight: "LX9") { gate } }')
    assert unknown["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    bad = gql(client, '{ flightStatus(flight: "LX 1 2") { gate } }')
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert bad["errors"][0]["message"] == "flight: 'LX 1 2' is not a flight number like LX100"


def test_the_schema_is_typed_throughout() -> None:
    sdl = schema.as_str()
    assert "JSON" not in sdl
    for name in ("Flight", "FlightStatus", "Booking", "Passenger", "Ticket", "Seat", "SeatMap",
                 "LoyaltyAccount", "Fare", "Money", "AirportTime", "RefundQuote", "ChangeOffer"):  # fmt: skip
        assert f"type {name} {{" in sdl, name
    for operation in ("processBooking", "selectSeats", "cancelBooking", "changeFlight",
                      "bookingStatus", "flightUpdates", "seatMap", "findBooking"):  # fmt: skip
        assert f"{operation}(" in sdl or f"{operation}:" in sdl, operation
