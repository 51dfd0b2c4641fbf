"""Disruption handling end to end: a flight cancelled in the hub -> the rule -> the disruption
workflow -> an email with offers (real SMTP server) -> the signed link -> a new ticket on the
new flight, seat counts right on both flights, loyalty as it was."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from jetbridge.app import create_app
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.config import Settings
from jetbridge.flights.hub import FlightHub
from jetbridge.flights.merge import Update
from jetbridge.flights.model import FlightIdentity
from jetbridge.payments.test_provider import APPROVE, Ledger, create_test_provider
from jetbridge.storage.schema import scheduled_flights, tickets
from support.auth import as_operator, bearer, ensure_tenant
from support.servers import Mailbox, serve_app, smtp_server

DAY = (datetime.now(UTC) + timedelta(days=20)).date()
FLIGHT = f"LX0100-{DAY.isoformat()}"
LINK = re.compile(r"/disruption/choose\?link=(\S+)")


@dataclass
class World:
    client: TestClient
    mailbox: Mailbox
    ledger: Ledger
    source_time: list[datetime]

    @property
    def platform(self) -> Any:
        return self.client.app.state.platform  # type: ignore[attr-defined]

    def hub(self, number: str = "0100", **fields: Any) -> None:
        """One update of a flight in the hub, newer than the last."""
        self.source_time[0] += timedelta(seconds=1)
        identity = FlightIdentity.create(
            airline="LX",
            flight_number=number,
            origin_date=DAY,
            departure_airport="ZRH",
            arrival_airport="LHR",
        )
        FlightHub(self.platform.backbone).apply_all(
            [Update(identity, "aodb", self.source_time[0], fields)]
        )


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    ledger = Ledger(timeout_seconds=2)
    with smtp_server() as mailbox, serve_app(create_test_provider(ledger)) as provider_url:
        settings = Settings(
            database_url=database_url,
            payments_url=provider_url,
            smtp_url=mailbox.url,
            delivery_poll_seconds=0.05,
            public_url="https://jetbridge.example",
        )
        app = create_app(settings)
        with TestClient(app) as client:
            as_operator(client)
            with app.state.platform.backbone.transaction() as conn:
                import_schedule(conn, demo_schedule(start=DAY, days=1))
            yield World(client, mailbox, ledger, [datetime.now(UTC)])


def book(world: World, email: str, passengers: int = 2, customer: str = "cust-1") -> str:
    body = {
        "flight_id": FLIGHT, "cabin": "economy", "customer_id": customer,
        "passengers": [{"given_name": "Ada", "family_name": f"Lovelace{n}"} for n in range(passengers)],
        "payment": {"card": APPROVE},
    }  # fmt: skip
    key = f"key-{email.replace('@', '.')}"
    response = world.client.post("/api/bookings", json=body, headers={"Idempotency-Key": key})
    assert response.status_code == 202, response.text
    booking_id = str(response.json()["booking_id"])
    wait_for(
        "the booking to be confirmed",
        lambda: world.client.get(f"/api/bookings/{booking_id}").json()["status"] == "confirmed",
    )
    contacts = world.client.put(f"/api/bookings/{booking_id}/contacts", json={"email": email})
    assert contacts.status_code == 200, contacts.text
    return booking_id


def seats_left(world: World, flight_id: str) -> int:
    offer = world.client.get(f"/api/flights/{flight_id}/offer").json()
    return int(offer["cabins"]["economy"]["seats_left"])


def mail_to(world: World, address: str) -> list[Any]:
    return [m for m in world.mailbox.messages if m["To"] == address]


def text_of(message: Any) -> str:
    return str(message.get_payload(decode=True).decode())


def link_in(message: Any) -> str:
    found = LINK.search(text_of(message))
    assert found, text_of(message)
    return found.group(1)


def ticket_numbers(world: World, booking_id: str) -> list[str]:
    with world.platform.backbone.reading() as conn:
        rows = conn.execute(
            select(tickets.c.ticket_number)
            .where(tickets.c.booking_id == booking_id)
            .order_by(tickets.c.passenger_index)
        )
        return list(rows.scalars())


def departs(world: World, flight_id: str) -> str:
    with world.platform.backbone.reading() as conn:
        at = conn.execute(
            select(scheduled_flights.c.departs_at).where(scheduled_flights.c.flight_id == flight_id)
        ).scalar_one()
    return datetime.fromtimestamp(at, UTC).isoformat()


def cancel(world: World) -> None:
    world.hub(**{"times.off_block.scheduled": departs(world, FLIGHT), "status": "scheduled"})
    world.hub(status="cancelled")


def test_a_cancelled_flight_offers_rebooking_through_the_signed_link(world: World) -> None:
    client = world.client
    booking_id = book(world, "ada@example.com")
    old_tickets = ticket_numbers(world, booking_id)
    points = client.get("/api/customers/cust-1/loyalty").json()["points"]
    assert points > 0
    later = [f"LX0101-{DAY.isoformat()}", f"LX0102-{DAY.isoformat()}"]
    initial = {flight: seats_left(world, flight) for flight in later}
    cancel(world)
    (mail,) = wait_for("the offers email", lambda: mail_to(world, "ada@example.com"))
    assert "LX100 ZRH-LHR is cancelled" in mail["Subject"]
    assert "We are holding seats for you on" in text_of(mail)
    link = link_in(mail)

    page = client.get("/disruption/choose", params={"link": link})
    assert page.status_code == 200 and "Take this flight" in page.text
    offers = client.get("/api/disruptions/choice", params={"link": link}).json()["offers"]
    # Same cabin first (the day's two later flights), then another cabin.
    assert [(o["flight_id"], o["cabin"]) for o in offers] == [
        (later[0], "economy"), (later[1], "economy"), (later[0], "business"),
    ]  # fmt: skip
    chosen = offers[1]
    before_old = seats_left(world, FLIGHT)
    before_new = seats_left(world, chosen["flight_id"])

    answered = client.post(
        "/api/disruptions/choice", json={"link": link, "action": "accept", "offer": 1}
    )
    assert answered.status_code == 200, answered.text
    booking = wait_for(
        "the rebooking",
        lambda: (
            (b := client.get(f"/api/bookings/{booking_id}").json())["flight_id"]
            == chosen["flight_id"]
            and b
        ),
    )
    assert booking["status"] == "confirmed"
    new_tickets = wait_for("new tickets", lambda: ticket_numbers(world, booking_id))
    assert len(new_tickets) == 2 and not set(new_tickets) & set(old_tickets)
    # The seats moved: two back on the cancelled flight, the held ones sold on the new one
    # (the other offers' holds are released).
    assert seats_left(world, FLIGHT) == before_old + 2
    assert seats_left(world, chosen["flight_id"]) == before_new
    assert seats_left(world, later[0]) == initial[later[0]]
    assert seats_left(world, later[1]) == initial[later[1]] - 2
    loyalty = client.get("/api/customers/cust-1/loyalty").json()
    assert loyalty["points"] == points
    assert [h["kind"] for h in loyalty["history"]] == ["award"]

    again = client.post("/api/disruptions/choice", json={"link": link, "action": "refund"})
    assert again.status_code == 409 and "made already" in again.json()["message"]

    ensure_tenant(client.app, "LX")
    view = client.get("/api/disruptions", headers=bearer(client.app, roles=["agent"], tenant="LX"))
    assert view.status_code == 200, view.text
    (flight,) = view.json()
    assert flight["counts"] == {
        "affected": 1, "notified": 1, "rebooked": 1, "refunded": 0, "waiting": 0,
    }  # fmt: skip
    other = client.get("/api/disruptions", headers=bearer(client.app, roles=["agent"], tenant="LH"))
    assert other.json() == []
