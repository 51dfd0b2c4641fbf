"""After paying: seats picked on the seat map, tickets with their seats, the refund known before
cancelling, a change of flight paying or getting back the fare difference, and errors that say
what to fix in words."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from jetbridge.app import create_app
from jetbridge.booking.catalog import ScheduleEntry, demo_schedule, import_schedule
from jetbridge.booking.loyalty import points_for, tier_for
from jetbridge.config import Settings
from jetbridge.payments.test_provider import APPROVE, DECLINE, create_test_provider
from jetbridge.storage.schema import bookings, loyalty_accounts, loyalty_ledger
from support.servers import serve_app

DAY = (datetime.now(UTC) + timedelta(days=20)).date()
FLIGHT = f"LX0100-{DAY.isoformat()}"
LATER = f"LX0101-{DAY.isoformat()}"
DEARER = f"LX0999-{DAY.isoformat()}"


def dearer_flight() -> ScheduleEntry:
    departure = datetime(DAY.year, DAY.month, DAY.day, 21, tzinfo=UTC)
    return ScheduleEntry(
        airline="LX", flight_number="999", origin="ZRH", destination="LHR",
        departure=departure, arrival=departure + timedelta(minutes=100),
        aircraft_type="A320", currency="CHF", fares={"economy": 90_000},
    )  # fmt: skip


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with serve_app(create_test_provider()) as provider:
        settings = Settings(
            database_url=database_url, payments_url=provider, delivery_poll_seconds=0.05
        )
        app = create_app(settings)
        with TestClient(app) as client:
            with app.state.platform.backbone.transaction() as conn:
                import_schedule(conn, [*demo_schedule(start=DAY, days=1), dearer_flight()])
            yield client


def book(client: TestClient, key: str, seats: list[str | None], card: str = APPROVE) -> Any:
    passengers = [
        {"given_name": "Ada", "family_name": f"Lovelace{n}"} | ({"seat": s} if s else {})
        for n, s in enumerate(seats)
    ]
    body = {"flight_id": FLIGHT, "cabin": "economy", "passengers": passengers,
            "payment": {"card": card}}  # fmt: skip
    return client.post("/api/bookings", json=body, headers={"Idempotency-Key": key})


def settled(client: TestClient, booked: dict[str, Any]) -> dict[str, Any]:
    headers = {"X-Booking-Token": booked["guest_token"]}
    deadline = time.time() + 30
    while time.time() < deadline:
        state = client.get(f"/api/bookings/{booked['booking_id']}", headers=headers).json()
        if state["status"] in {"confirmed", "failed", "cancelled"}:
            return dict(state)
        time.sleep(0.05)
    raise AssertionError("the booking did not settle")


def taken(client: TestClient, flight_id: str) -> set[str]:
    plan = client.get(f"/api/flights/{flight_id}/seatmap").json()
    return {
        seat["seat"]
        for cabin in plan["cabins"]
        for row in cabin["rows"]
        for seat in row["seats"]
        if seat["taken"]
    }


def test_chosen_seats_are_the_passengers_tickets_and_taken_on_the_map(
    client: TestClient,
) -> None:
    booked = book(client, "seats-0001", ["12D", "7C"]).json()
    state = settled(client, booked)
    assert state["status"] == "confirmed"
    assert [t["seat"] for t in state["tickets"]] == ["12D", "7C"]
    assert all(len(t["ticket_number"]) == 13 for t in state["tickets"])
    assert {"12D", "7C"} <= taken(client, FLIGHT)
    assert state["flight"]["departure"]["zone"] == "Europe/Zurich"
    assert state["flight"]["arrival"]["zone"] == "Europe/London"
    plan = client.get(f"/api/flights/{FLIGHT}/seatmap").json()
    assert [c["cabin"] for c in plan["cabins"]] == ["business", "economy"]
    assert plan["cabins"][1]["letters"] == "ABCDEF"


def test_a_taken_seat_refuses_the_booking_and_no_locator_exists(
    client: TestClient, database_url: str
) -> None:
    settled(client, book(client, "seats-0002", ["9A"]).json())
    refused = book(client, "seats-0003", ["9B", "9A"])
    assert refused.status_code == 409
    assert refused.json()["message"] == "passengers[1].seat: 9A is taken; choose another seat"
    assert "locator" not in refused.json()
    with client.app.state.platform.backbone.reading() as conn:  # type: ignore[attr-defined]
        assert conn.execute(select(func.count()).select_from(bookings)).scalar_one() == 1


@pytest.mark.parametrize(
    ("seats", "message"),
    [
        (["9A", None], "passengers[1].seat: choose a seat for every passenger, or for none"),
        (["2A"], "passengers[0].seat: 2A is in business, not in the economy cabin booked"),
        (["31A"], "passengers[0].seat: there is no seat 31A on this aircraft"),
        (["9A", "9A"], "passengers[1].seat: 9A is already chosen for passenger 1"),
    ],
)
def test_a_wrong_seat_choice_says_what_to_fix(
    client: TestClient, seats: list[str | None], message: str
) -> None:
    refused = book(client, "seats-0004", seats)
    assert refused.status_code == 400
    assert refused.json()["message"] == message


def test_invalid_input_is_described_in_words_not_patterns(client: TestClient) -> None:
    answer = client.get("/api/flights/search", params={"origin": "zrh", "destination": "LHR",
                                                        "date": DAY.isoformat()})  # fmt: skip
    assert answer.status_code == 422
    message = answer.json()["message"]
    assert message == "query.origin: should be a three-letter code in capitals, such as ZRH"
    bad = book(client, "seats-0005", ["7Z"])
    assert bad.status_code == 422
    assert "body.passengers[0].seat: should be a seat such as 12A" in bad.json()["message"]
    for text in (answer.text, bad.text):
        assert "^" not in text and "[A-Z]" not in text


def test_seats_change_after_booking_and_the_old_ones_go_back_on_sale(
    client: TestClient,
) -> None:
    booked = book(client, "seats-0006", [None, None]).json()
    state = settled(client, booked)
    headers = {"X-Booking-Token": booked["guest_token"]}
    before = {t["seat"] for t in state["tickets"]}
    moved = client.post(
        f"/api/bookings/{booked['booking_id']}/seats", json={"seats": ["20F", "20E"]},
        headers=headers,
    )  # fmt: skip
    assert moved.status_code == 200, moved.text
    assert [t["seat"] for t in moved.json()["tickets"]] == ["20F", "20E"]
    now_taken = taken(client, FLIGHT)
    assert {"20F", "20E"} <= now_taken and not before & now_taken
    swap = client.post(
        f"/api/bookings/{booked['booking_id']}/seats", json={"seats": ["20E", "20F"]},
        headers=headers,
    )  # fmt: skip
    assert [t["seat"] for t in swap.json()["tickets"]] == ["20E", "20F"]
    stranger = client.post(
        f"/api/bookings/{booked['booking_id']}/seats", json={"seats": ["21A", "21B"]}
    )
    assert stranger.status_code == 404
    one = client.post(
        f"/api/bookings/{booked['booking_id']}/seats", json={"seats": ["21A"]}, headers=headers
    )
    assert one.status_code == 400
    assert one.json()["message"] == "seats: choose 2 seat(s), one per passenger; 1 given"


def test_the_refund_shown_before_cancelling_is_the_refund_made(client: TestClient) -> None:
    booked = book(client, "seats-0007", [None]).json()
    settled(client, booked)
    headers = {"X-Booking-Token": booked["guest_token"]}
    quote = client.get(f"/api/bookings/{booked['booking_id']}/refund", headers=headers)
    assert quote.status_code == 200
    assert quote.json()["rule"] == "within 24 hours of booking: full refund"
    assert client.get(f"/api/bookings/{booked['booking_id']}/refund").status_code == 404
    cancelled = client.post(f"/api/bookings/{booked['booking_id']}/cancel", headers=headers)
    assert cancelled.json()["refund"] == quote.json()["refund"]
    again = client.get(f"/api/bookings/{booked['booking_id']}/refund", headers=headers)
    assert again.status_code == 409


def test_change_to_another_flight_of_the_route(client: TestClient) -> None:
    booked = book(client, "seats-0008", ["8A", "8B"]).json()
    settled(client, booked)
    headers = {"X-Booking-Token": booked["guest_token"]}
    path = f"/api/bookings/{booked['booking_id']}/change"
    quote = client.get(path, params={"flight_id": LATER}, headers=headers).json()
    assert quote["difference"]["amount"] == quote["new_total"]["amount"] - quote["paid"]["amount"]
    changed = client.post(path, json={"flight_id": LATER}, headers=headers)
    assert changed.status_code == 200, changed.text
    state = settled(client, booked)
    assert state["flight_id"] == LATER
    assert state["amount"] == quote["new_total"]
    assert len(state["tickets"]) == 2
    assert {t["seat"] for t in state["tickets"]} <= taken(client, LATER)
    assert not {"8A", "8B"} & taken(client, FLIGHT)
    other_route = client.get(path, params={"flight_id": f"LX0110-{DAY}"}, headers=headers)
    assert other_route.status_code == 400
    assert "choose a flight on the booked route" in other_route.json()["message"]


def test_a_dearer_flight_is_paid_for_and_a_declined_card_says_so(client: TestClient) -> None:
    booked = book(client, "seats-0009", [None]).json()
    settled(client, booked)
    headers = {"X-Booking-Token": booked["guest_token"]}
    path = f"/api/bookings/{booked['booking_id']}/change"
    quote = client.get(path, params={"flight_id": DEARER}, headers=headers).json()
    assert quote["difference"]["amount"] > 0
    no_card = client.post(path, json={"flight_id": DEARER}, headers=headers)
    assert no_card.status_code == 400
    assert "give a card to pay the difference" in no_card.json()["message"]
    declined = client.post(
        path, json={"flight_id": DEARER, "payment": {"card": DECLINE}}, headers=headers
    )
    assert declined.status_code == 409
    assert "declined by the bank that issued it" in declined.json()["message"]
    assert settled(client, booked)["flight_id"] == FLIGHT
    paid = client.post(
        path, json={"flight_id": DEARER, "payment": {"card": APPROVE}}, headers=headers
    )
    assert paid.status_code == 200, paid.text
    assert settled(client, booked)["amount"] == quote["new_total"]


def ledger_of(client: TestClient, booking_id: str) -> dict[str, int]:
    platform = client.app.state.platform  # type: ignore[attr-defined]
    with platform.backbone.reading() as conn:
        rows = conn.execute(
            select(loyalty_ledger.c.kind, loyalty_ledger.c.points).where(
                loyalty_ledger.c.booking_id == booking_id
            )
        )
        return {row.kind: row.points for row in rows}


def balance_of(client: TestClient, customer: str) -> int:
    platform = client.app.state.platform  # type: ignore[attr-defined]
    with platform.backbone.reading() as conn:
        return int(
            conn.execute(
                select(loyalty_accounts.c.points).where(loyalty_accounts.c.customer_id == customer)
            ).scalar_one()
        )


def test_a_change_reissues_the_tickets_and_adjusts_the_points(client: TestClient) -> None:
    booked = book(client, "seats-0011", [None]).json()
    state = settled(client, booked)
    customer = booked["customer_id"]
    (first_ticket,) = [t["ticket_number"] for t in state["tickets"]]
    award = ledger_of(client, booked["booking_id"])["award"]
    assert award > 0 and balance_of(client, customer) == award
    headers = {"X-Booking-Token": booked["guest_token"]}
    path = f"/api/bookings/{booked['booking_id']}/change"

    dearer = client.post(
        path, json={"flight_id": DEARER, "payment": {"card": APPROVE}}, headers=headers
    )
    assert dearer.status_code == 200, dearer.text
    paid_more = dearer.json()["difference"]["amount"]
    state = settled(client, booked)
    (ticket,) = state["tickets"]
    assert ticket["ticket_number"] != first_ticket
    assert [(c["coupon"], c["flight_id"], c["seat"]) for c in ticket["coupons"]] == [
        (1, DEARER, ticket["seat"])
    ]
    assert [
        (e["ticket_number"], e["exchanged_for"], e["reason"]) for e in state["exchanged_tickets"]
    ] == [(first_ticket, ticket["ticket_number"], "voluntary change")]
    # The amount paid on top earns points as a fare does (economy, bronze tier).
    earned = points_for(fare_minor=paid_more, cabin="economy", tier=tier_for(award))
    assert ledger_of(client, booked["booking_id"]) == {"award": award, "change1": earned}
    assert balance_of(client, customer) == award + earned

    cheaper = client.post(path, json={"flight_id": LATER}, headers=headers)
    assert cheaper.status_code == 200, cheaper.text
    refunded = -cheaper.json()["difference"]["amount"]
    assert refunded > 0
    state = settled(client, booked)
    assert len(state["exchanged_tickets"]) == 2
    assert state["exchanged_tickets"][1]["ticket_number"] == ticket["ticket_number"]
    # The amount refunded gives its points back.
    returned = points_for(fare_minor=refunded, cabin="economy", tier=tier_for(award + earned))
    assert ledger_of(client, booked["booking_id"])["change2"] == -returned
    held = award + earned - returned
    assert balance_of(client, customer) == held

    cancelled = client.post(f"/api/bookings/{booked['booking_id']}/cancel", headers=headers)
    assert cancelled.status_code == 200, cancelled.text
    assert ledger_of(client, booked["booking_id"])["revoke"] == -held
    assert balance_of(client, customer) == 0


def test_a_declined_booking_explains_itself(client: TestClient) -> None:
    state = settled(client, book(client, "seats-0010", [None], card=DECLINE).json())
    assert state["status"] == "failed"
    assert state["failure_message"].startswith("Your card was declined by the bank")


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/api/bookings/{id}/seats", {"seats": ["1A"] * 10}, 422),
        ("POST", "/api/bookings/{id}/seats", {"seats": ["<script>"]}, 422),
        ("POST", "/api/bookings/{id}/seats", {"seats": "12A"}, 422),
        ("POST", "/api/bookings/{id}/seats", {"seats": ["12A"], "extra": 1}, 422),
        ("POST", "/api/bookings/{id}/change", {"flight_id": "../../etc/passwd"}, 422),
        ("POST", "/api/bookings/{id}/change", {"flight_id": FLIGHT, "payment": {"card": "x"}}, 422),
        ("GET", "/api/bookings/{id}/change?flight_id=%00", None, 422),
        ("GET", "/api/bookings/no-such-booking/change?flight_id=" + FLIGHT, None, 404),
        ("GET", "/api/bookings/no-such-booking/refund", None, 404),
        ("POST", "/api/bookings/no-such-booking/seats", {"seats": ["12A"]}, 404),
        ("GET", "/api/flights/%3Cscript%3E/seatmap", None, 404),
    ],
)
def test_hostile_input_to_the_booking_routes_is_a_clear_4xx(
    client: TestClient, method: str, path: str, body: Any, status: int
) -> None:
    booked = book(client, "hostile-0001", [None]).json()
    headers = {"X-Booking-Token": booked["guest_token"]}
    answer = client.request(
        method, path.format(id=booked["booking_id"]), json=body, headers=headers
    )
    assert answer.status_code == status, answer.text
    assert answer.json()["message"]
    assert "^" not in answer.json()["message"]
