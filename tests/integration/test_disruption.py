"""Disruption handling end to end: a flight cancelled in the hub -> the rule -> the disruption
workflow -> an email with offers (real SMTP server) -> the signed link -> a new ticket on the
new flight, seat counts right on both flights, loyalty as it was."""

from __future__ import annotations

import dataclasses
import html
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from jetbridge.app import create_app
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.config import Settings
from jetbridge.disruption import offers as offers_module
from jetbridge.flights.hub import FlightHub
from jetbridge.flights.merge import Update
from jetbridge.flights.model import FlightIdentity
from jetbridge.payments.test_provider import APPROVE, Ledger, create_test_provider
from jetbridge.storage.schema import scheduled_flights, tickets
from support.auth import as_operator, bearer, ensure_tenant
from support.servers import Mailbox, serve_app, smtp_server
from support.sms import SmsGateway, sms_gateway
from support.webhook import webhook_receiver

DAY = (datetime.now(UTC) + timedelta(days=20)).date()
FLIGHT = f"LX0100-{DAY.isoformat()}"
LINK = re.compile(r"/disruption/choose\?link=(\S+)")


@dataclass
class World:
    client: TestClient
    mailbox: Mailbox
    ledger: Ledger
    sms: SmsGateway
    source_time: list[datetime]

    @property
    def platform(self) -> Any:
        return self.client.app.state.platform  # type: ignore[attr-defined]

    def hub(self, number: str = "0100", route: str = "ZRH-LHR", **fields: Any) -> None:
        """One update of a flight in the hub, newer than the last."""
        self.source_time[0] += timedelta(seconds=1)
        identity = FlightIdentity.create(
            airline="LX",
            flight_number=number,
            origin_date=DAY,
            departure_airport=route[:3],
            arrival_airport=route[4:],
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


@contextmanager
def running(database_url: str, **settings: Any) -> Iterator[World]:
    """A platform with a real SMTP server, payment provider and SMS gateway, and a day's
    demo schedule."""
    ledger = Ledger(timeout_seconds=2)
    with (
        smtp_server() as mailbox,
        sms_gateway() as sms,
        serve_app(create_test_provider(ledger)) as provider_url,
    ):
        app = create_app(
            Settings(
                database_url=database_url,
                payments_url=provider_url,
                smtp_url=mailbox.url,
                sms_url=sms.url,
                sms_api_key=sms.key,
                delivery_poll_seconds=0.05,
                public_url="https://jetbridge.example",
                **settings,
            )
        )
        with TestClient(app) as client:
            as_operator(client)
            with app.state.platform.backbone.transaction() as conn:
                import_schedule(conn, demo_schedule(start=DAY, days=1))
            yield World(client, mailbox, ledger, sms, [datetime.now(UTC)])


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with running(database_url) as started:
        yield started


def book(
    world: World,
    email: str,
    passengers: int = 2,
    customer: str = "cust-1",
    flight: str = FLIGHT,
    **contacts: str,
) -> str:
    body = {
        "flight_id": flight, "cabin": "economy", "customer_id": customer,
        "passengers": [{"given_name": "Ada", "family_name": f"Lovelace{n}"} for n in range(passengers)],
        "payment": {"card": APPROVE},
    }  # fmt: skip
    key = f"key-{flight}-{email.replace('@', '.')}"
    response = world.client.post("/api/bookings", json=body, headers={"Idempotency-Key": key})
    assert response.status_code == 202, response.text
    booking_id = str(response.json()["booking_id"])
    wait_for(
        "the booking to be confirmed",
        lambda: world.client.get(f"/api/bookings/{booking_id}").json()["status"] == "confirmed",
    )
    answer = world.client.put(
        f"/api/bookings/{booking_id}/contacts", json={"email": email, **contacts}
    )
    assert answer.status_code == 200, answer.text
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
    # GraphQL answers the same through the REST route: the disruption, its offers and notice.
    query = """query($id: String!) { disruptions(bookingId: $id) {
        flightKey kind status newFlightId chooseBy notices
        offers { offer flightId flight origin destination departure arrival cabin } } }"""
    answer = client.post("/graphql", json={"query": query, "variables": {"id": booking_id}})
    assert "errors" not in answer.json(), answer.text
    (shown,) = answer.json()["data"]["disruptions"]
    assert (shown["kind"], shown["status"], shown["newFlightId"]) == (
        "cancellation",
        "waiting",
        None,
    )
    assert shown["flightKey"].startswith(FLIGHT) and shown["chooseBy"]
    assert [(o["flightId"], o["cabin"]) for o in shown["offers"]] == [
        (o["flight_id"], o["cabin"]) for o in offers
    ]
    assert any("LX100 ZRH-LHR is cancelled" in subject for subject in shown["notices"])
    nobody = TestClient(client.app).post(
        "/graphql", json={"query": query, "variables": {"id": booking_id}}
    )
    # as the REST route: someone else's booking does not exist for them
    assert nobody.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    for hostile in ("x" * 5000, "' OR 1=1 --", "\u0000", "../../etc"):
        bad = client.post("/graphql", json={"query": query, "variables": {"id": hostile}})
        assert bad.json()["errors"][0]["extensions"]["code"] in {"NOT_FOUND", "BAD_USER_INPUT"}
        rest = client.get(f"/api/bookings/{quote(hostile, safe='')}/disruptions")
        assert rest.status_code in {400, 404, 422}, rest.text
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
    page = client.get("/ops/disruptions", headers=bearer(client.app, roles=["agent"], tenant="LX"))
    assert page.status_code == 200 and "LX0100" in page.text and "<td>1</td>" in page.text


def offers_link(world: World, address: str) -> str:
    (mail,) = wait_for("the offers email", lambda: mail_to(world, address))
    return link_in(mail)


def test_asking_for_a_refund_cancels_refunds_in_full_and_frees_every_seat(world: World) -> None:
    client = world.client
    booking_id = book(world, "grace@example.com", customer="cust-2")
    before = seats_left(world, FLIGHT)
    later = f"LX0101-{DAY.isoformat()}"
    free_later = seats_left(world, later)
    cancel(world)
    link = offers_link(world, "grace@example.com")
    assert seats_left(world, later) == free_later - 2  # held for the passenger
    detector = world.platform.disruption.detector
    for event in flight_events(world) * 2:  # the hub's events again: nothing starts twice
        detector.detect(event)
    started = world.platform.workflows.list(limit=1000)
    assert sorted(e["machine"] for e in started if e["machine"] != "booking") == [
        "disruption",
        "rebooking",
    ]
    answered = client.post("/api/disruptions/choice", json={"link": link, "action": "refund"})
    assert answered.status_code == 200, answered.text
    booking = wait_for(
        "the cancellation",
        lambda: (
            (b := client.get(f"/api/bookings/{booking_id}").json())["status"] == "cancelled" and b
        ),
    )
    assert "refunded in full" in booking["failure"]
    (intent,) = world.ledger.intents.values()
    wait_for("the refund", lambda: intent.get("amount_refunded") == booking["amount"]["amount"])
    assert seats_left(world, FLIGHT) == before + 2
    assert seats_left(world, later) == free_later
    assert client.get("/api/customers/cust-2/loyalty").json()["points"] == 0
    page = client.get("/disruption/choose", params={"link": link})
    assert page.status_code == 200 and "refunded" in page.text
    assert len(mail_to(world, "grace@example.com")) == 1
    # A flight nobody booked is remembered as cancelled, but starts no workflow.
    empty = f"LX0120-{DAY.isoformat()}"
    world.hub("0120", "ZRH-CDG", **{"times.off_block.scheduled": departs(world, empty)})
    world.hub("0120", "ZRH-CDG", status="cancelled")

    def remembered() -> bool:
        with world.platform.backbone.reading() as conn:
            return offers_module.cancelled_flight_ids(conn) >= {empty}

    wait_for("the empty flight's cancellation", remembered)
    names = [e["name"] for e in world.platform.workflows.list(limit=1000)]
    assert not [name for name in names if "LX0120" in name]
    assert [f["flight_key"][:6] for f in client.get("/api/disruptions").json()] == ["LX0100"]


def test_without_an_answer_the_first_offer_is_confirmed(database_url: str) -> None:
    with running(database_url, disruption_choice_seconds=2) as world:
        booking_id = book(world, "alan@example.com", passengers=1, customer="cust-3")
        cancel(world)
        link = offers_link(world, "alan@example.com")
        first = world.client.get("/api/disruptions/choice", params={"link": link}).json()
        first_flight = first["offers"][0]["flight_id"]
        wait_for(
            "the automatic rebooking",
            lambda: (
                world.client.get(f"/api/bookings/{booking_id}").json()["flight_id"] == first_flight
            ),
        )
        late = world.client.post(
            "/api/disruptions/choice", json={"link": link, "action": "accept", "offer": 1}
        )
        assert late.status_code == 403 and "time to choose has passed" in late.json()["message"]
        shown = world.client.get(f"/api/bookings/{booking_id}/disruptions").json()
        assert shown["disruptions"][0]["status"] == "rebooked"
        assert shown["notices"][0]["message"]["offers"][0]["flight_id"] == first_flight


def flight_events(world: World) -> list[dict[str, Any]]:
    """The hub's `flight.updated` events as the rule's target receives them."""
    listed = world.client.get("/api/buses/default/events", params={"limit": 1000}).json()
    return [
        {"id": e["event"]["id"], "detail": e["event"]["data"]}
        for e in listed
        if e["event"]["type"] == "flight.updated"
    ]


def test_delays_notify_each_channel_once_per_change_whatever_the_event_order(
    database_url: str,
) -> None:
    with (
        running(database_url, disruption_delay_by_airline="LX=30") as world,
        webhook_receiver() as hook,
    ):
        booking_id = book(
            world, "ada@example.com", passengers=1, phone="+41441234567", webhook_url=hook.url
        )
        scheduled = datetime.fromisoformat(departs(world, FLIGHT))
        world.hub(**{"times.off_block.scheduled": scheduled.isoformat(), "status": "scheduled"})
        world.hub(**{"times.off_block.estimated": (scheduled + timedelta(minutes=20)).isoformat()})
        world.hub(**{"times.off_block.estimated": (scheduled + timedelta(minutes=45)).isoformat()})
        wait_for("the first delay email", lambda: mail_to(world, "ada@example.com"))
        detector = world.platform.disruption.detector
        events = flight_events(world)
        for event in events:  # every event again, oldest last: duplicates and out of order
            detector.detect(event)
        for event in reversed(events):
            detector.detect(event)
        world.hub(**{"times.off_block.estimated": (scheduled + timedelta(minutes=90)).isoformat()})
        mails = wait_for(
            "the second delay email",
            lambda: (
                len(mail_to(world, "ada@example.com")) == 2 and mail_to(world, "ada@example.com")
            ),
        )
        assert ["delayed by 45 minutes" in m["Subject"] for m in mails] == [True, False]
        assert "delayed by 90 minutes" in mails[1]["Subject"]
        wait_for("two text messages", lambda: len(world.sms.messages) == 2)
        assert [m["to"] for m in world.sms.messages] == ["+41441234567"] * 2
        wait_for("two webhooks", lambda: len(hook.requests) == 2)
        # Same delay again with a gate: the first gate known is no change; the second is one.
        world.hub(gate="A7")
        world.hub(gate="A9")
        wait_for("the gate email", lambda: len(mail_to(world, "ada@example.com")) == 3)
        assert "gate A9" in mail_to(world, "ada@example.com")[2]["Subject"]
        page = world.client.get(f"/api/bookings/{booking_id}/disruptions").json()
        assert [n["kind"] for n in page["notices"]] == ["delay", "delay", "gate_change"]
        wait_for("three text messages", lambda: len(world.sms.messages) == 3)
        wait_for("three webhooks", lambda: len(hook.requests) == 3)
        assert len(mail_to(world, "ada@example.com")) == 3


def test_forged_expired_reused_and_malformed_links_are_refused(world: World) -> None:
    from jetbridge.disruption.links import Choice

    client = world.client
    booking_id = book(world, "mallory@example.com", passengers=1, customer="cust-4")
    cancel(world)
    link = offers_link(world, "mallory@example.com")
    prefix, payload, signature = link.split(".")
    signer = world.platform.disruption.signer
    choice = signer.verify(link, now=time.time())
    other = Choice("0" * 36, choice.flight_key, choice.expires_at)
    foreign = signer.sign(other).split(".")[1]
    refused = {
        "forged signature": (f"{prefix}.{payload}.{'0' * len(signature)}", 403, "signature"),
        "payload of another booking": (f"{prefix}.{foreign}.{signature}", 403, "signature"),
        "expired": (
            signer.sign(Choice(booking_id, choice.flight_key, 1)),
            403,
            "time to choose has passed",
        ),
        "not a link": ("hello", 400, "expected 'v1.<payload>.<signature>'"),
        "bad payload": (f"v1.%%%.{signature}", 403, "signature"),
        "signed for a booking with no disruption": (signer.sign(other), 404, "no disruption"),
    }
    for what, (bad, status, message) in refused.items():
        answer = client.post(
            "/api/disruptions/choice", json={"link": bad, "action": "accept", "offer": 0}
        )
        assert (answer.status_code, what) == (status, what), answer.text
        assert message in answer.json()["message"], what
        page = client.get("/disruption/choose", params={"link": bad})
        assert page.status_code == status and "Take this flight" not in page.text, what
        form = client.post("/disruption/choose", data={"link": bad, "action": "refund"})
        assert form.status_code == status and message in html.unescape(form.text), what
    wrong_offer = client.post(
        "/api/disruptions/choice", json={"link": link, "action": "accept", "offer": 9}
    )
    assert wrong_offer.status_code == 400 and "offer: expected one of" in wrong_offer.text
    for body in (
        {"link": link, "action": "delete"},
        {"link": "v1." + "A" * 5000 + ".x", "action": "refund"},
        {"link": link, "action": "accept", "offer": -1},
        {"link": link, "action": "accept", "offer": "1; DROP TABLE"},
        {"action": "refund"},
    ):
        answer = client.post("/api/disruptions/choice", json=body)
        assert answer.status_code == 422, answer.text
    assert client.get("/disruption/choose", params={"link": "v1." + "A" * 5000}).status_code == 422
    # The real link still works once, through the page's form, and never again.
    done = client.post("/disruption/choose", data={"link": link, "action": "refund"})
    assert done.status_code == 200 and "refunded in full" in done.text
    reused = client.post("/disruption/choose", data={"link": link, "action": "accept", "offer": 0})
    assert reused.status_code == 409 and "made already" in reused.text
    wait_for(
        "the refund",
        lambda: client.get(f"/api/bookings/{booking_id}").json()["status"] == "cancelled",
    )


def test_a_late_arrival_rebooks_the_connection_it_misses(world: World) -> None:
    client = world.client
    onward_flight = f"LX0141-{DAY.isoformat()}"  # LHR-ZRH around noon
    book(world, "joan@example.com", passengers=1, customer="cust-5")
    onward = book(world, "joan@example.com", passengers=1, customer="cust-5", flight=onward_flight)
    scheduled = datetime.fromisoformat(departs(world, FLIGHT))
    world.hub(**{"times.off_block.scheduled": scheduled.isoformat(), "status": "scheduled"})
    world.hub(**{"times.off_block.estimated": (scheduled + timedelta(hours=4)).isoformat()})

    def connection_mail() -> list[Any]:
        return [m for m in mail_to(world, "joan@example.com") if "connection" in m["Subject"]]

    (mail,) = wait_for("the missed connection email", connection_mail)
    link = link_in(mail)
    offers = client.get("/api/disruptions/choice", params={"link": link}).json()["offers"]
    later = f"LX0142-{DAY.isoformat()}"
    assert [(o["flight_id"], o["origin"]) for o in offers][:1] == [(later, "LHR")]
    answered = client.post(
        "/api/disruptions/choice", json={"link": link, "action": "accept", "offer": 0}
    )
    assert answered.status_code == 200, answered.text
    wait_for(
        "the onward rebooking",
        lambda: client.get(f"/api/bookings/{onward}").json()["flight_id"] == later,
    )
    subjects = [m["Subject"] for m in mail_to(world, "joan@example.com")]
    assert any("delayed by 240 minutes" in s for s in subjects)


def test_a_booking_disrupted_twice_is_settled_once(world: World) -> None:
    """A missed connection, then the onward flight's cancellation: the first answer settles
    the booking, the other case is superseded and its workflow ends."""
    client = world.client
    onward_flight = f"LX0141-{DAY.isoformat()}"
    book(world, "rosa@example.com", passengers=1, customer="cust-9")
    onward = book(world, "rosa@example.com", passengers=1, customer="cust-9", flight=onward_flight)
    scheduled = datetime.fromisoformat(departs(world, FLIGHT))
    world.hub(**{"times.off_block.scheduled": scheduled.isoformat(), "status": "scheduled"})
    world.hub(**{"times.off_block.estimated": (scheduled + timedelta(hours=4)).isoformat()})

    def offer_mails() -> list[Any]:
        return [m for m in mail_to(world, "rosa@example.com") if "holding seats" in text_of(m)]

    wait_for("the missed connection offers", offer_mails)
    world.hub("0141", "LHR-ZRH", **{"times.off_block.scheduled": departs(world, onward_flight)})
    world.hub("0141", "LHR-ZRH", status="cancelled")
    first, second = wait_for(
        "the cancellation offers", lambda: len(offer_mails()) == 2 and offer_mails()
    )
    assert "connection" in first["Subject"] and "LX141 LHR-ZRH is cancelled" in second["Subject"]
    answered = client.post(
        "/api/disruptions/choice", json={"link": link_in(first), "action": "accept", "offer": 0}
    )
    assert answered.status_code == 200, answered.text
    later = f"LX0142-{DAY.isoformat()}"
    wait_for(
        "the rebooking",
        lambda: client.get(f"/api/bookings/{onward}").json()["flight_id"] == later,
    )
    execution = f"rebooking-{onward}-{onward_flight}-LHR-ZRH"
    wait_for(
        "the other workflow to end",
        lambda: world.platform.workflows.describe(name=execution)["status"] == "SUCCEEDED",
    )
    other = client.post(
        "/api/disruptions/choice", json={"link": link_in(second), "action": "refund"}
    )
    assert other.status_code == 409
    assert client.get(f"/api/bookings/{onward}").json()["status"] == "confirmed"
    (cancelled,) = [
        f for f in client.get("/api/disruptions").json() if f["flight_key"].startswith("LX0141")
    ]
    assert cancelled["counts"]["waiting"] == 0 and cancelled["counts"]["rebooked"] == 0


def test_partners_flights_are_offered_after_the_airlines_own(database_url: str) -> None:
    from jetbridge.booking.catalog import ScheduleEntry

    with running(database_url, disruption_partners="LX=LH") as world:
        departure = datetime.fromisoformat(departs(world, FLIGHT)) + timedelta(hours=2)
        partner = ScheduleEntry(
            airline="LH", flight_number="2411", origin="ZRH", destination="LHR",
            departure=departure, arrival=departure + timedelta(minutes=100),
            aircraft_type="A320", currency="CHF", fares={"economy": 15_000},
        )  # fmt: skip
        with world.platform.backbone.transaction() as conn:
            import_schedule(conn, [partner])
        book(world, "emmy@example.com", passengers=1, customer="cust-6")
        cancel(world)
        link = offers_link(world, "emmy@example.com")
        offers = world.client.get("/api/disruptions/choice", params={"link": link}).json()
        assert [(o["flight"], o["cabin"]) for o in offers["offers"]] == [
            ("LX101", "economy"), ("LX102", "economy"), ("LH2411", "economy"),
        ]  # fmt: skip


def test_a_choice_made_before_the_workflow_waits_is_found_by_it(world: World) -> None:
    from jetbridge.disruption import store

    booking_id = book(world, "kath@example.com", passengers=1, customer="cust-7")
    cancel(world)
    link = offers_link(world, "kath@example.com")
    flight_key = world.platform.disruption.signer.verify(link, now=time.time()).flight_key
    tasks = world.platform.workflows.system["rebooking"].handlers["AwaitChoice"].__self__
    answered: list[tuple[str, dict[str, Any]]] = []
    early = dataclasses.replace(
        tasks, answer=lambda token, output: answered.append((token, output))
    )
    with world.platform.backbone.transaction() as conn:  # as if the workflow had not got there
        store.set_case(conn, flight_key=flight_key, booking_id=booking_id, task_token=None)
        store.record_choice(
            conn,
            flight_key=flight_key,
            booking_id=booking_id,
            choice={"action": "accept", "offer": 0},
        )
    early.await_choice({"booking_id": booking_id, "flight_key": flight_key, "task_token": "t-1"})
    assert answered == [("t-1", {"action": "accept", "offer": 0})]
    again = world.client.post("/api/disruptions/choice", json={"link": link, "action": "refund"})
    assert again.status_code == 409


def test_contacts_refuse_bad_input_and_other_peoples_bookings(world: World) -> None:
    booking_id = book(world, "olga@example.com", passengers=1, customer="cust-8")
    path = f"/api/bookings/{booking_id}/contacts"
    refused = [
        ({"email": "not-an-address"}, 400, "email: expected an address"),
        ({"phone": "0441234567"}, 400, "phone: expected an international number"),
        ({"webhook_url": "http://10.0.0.1/hook"}, 400, "webhook_url"),
        ({"webhook_url": "ftp://example.com/x"}, 422, "webhook_url"),
        ({"email": "a@example.com", "fax": "1"}, 422, "fax"),
        ({"email": "x" * 400 + "@example.com"}, 422, "email"),
    ]
    for body, status, message in refused:
        answer = world.client.put(path, json=body)
        assert answer.status_code == status and message in answer.text, (body, answer.text)
        assert "not-an-address" not in answer.text
    stranger = TestClient(world.client.app)
    assert stranger.put(path, json={"email": "eve@example.com"}).status_code == 404
    assert stranger.get(f"/api/bookings/{booking_id}/disruptions").status_code == 404
    forged = {"X-Booking-Token": "0" * 40}
    assert stranger.put(path, json={"email": "e@example.com"}, headers=forged).status_code == 404
