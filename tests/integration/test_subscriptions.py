"""Passenger subscriptions: signed webhooks and emails, one per meaningful change, no duplicates."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.events.signing import verify
from jetbridge.flights.hub import FlightHub
from jetbridge.flights.merge import Update
from jetbridge.flights.model import FlightIdentity
from support.auth import as_operator
from support.servers import smtp_server
from support.webhook import webhook_receiver

FLIGHT = FlightIdentity.create(
    airline="LX",
    flight_number="318",
    origin_date="2026-11-24",
    departure_airport="ZRH",
    arrival_airport="LHR",
)
T0 = datetime(2026, 11, 24, 6, tzinfo=UTC)


def wait_for(predicate: Any, timeout: float = 15) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_webhook_and_email_subscribers_hear_each_meaningful_change_once(database_url: str) -> None:
    with smtp_server() as mailbox, webhook_receiver() as receiver:
        settings = Settings(
            database_url=database_url,
            smtp_url=mailbox.url,
            delivery_poll_seconds=0.05,
            retry_base_seconds=0.05,
        )
        app = create_app(settings)
        with TestClient(app) as client:
            as_operator(client)
            hub = FlightHub(app.state.platform.backbone)
            hub.apply_all(
                [
                    Update(
                        FLIGHT,
                        "aodb",
                        T0,
                        {"gate": "A1", "times.off_block.scheduled": T0 + timedelta(hours=2)},
                    )
                ]
            )
            hook = client.post(
                "/api/subscriptions",
                json={"flight_key": FLIGHT.key, "channel": "webhook", "url": receiver.url},
            ).json()
            mail = client.post(
                "/api/subscriptions",
                json={"flight_key": FLIGHT.key, "channel": "email", "email": "pax@example.com"},
            ).json()
            hub.apply_all(
                [
                    Update(FLIGHT, "aodb", T0 + timedelta(minutes=1), {"gate": "A7"}),
                    Update(
                        FLIGHT, "aodb", T0 + timedelta(minutes=1), {"gate": "A7"}
                    ),  # duplicate message
                    Update(
                        FLIGHT, "aodb", T0 + timedelta(minutes=2), {"registration": "HB-JLA"}
                    ),  # not meaningful
                    Update(FLIGHT, "aodb", T0 + timedelta(minutes=3), {"status": "boarding"}),
                ]
            )
            wait_for(lambda: len(receiver.requests) >= 2 and len(mailbox.messages) >= 2)
            time.sleep(0.5)
            seen = [
                (h.get("x-jetbridge-event-id"), json.loads(b)["changed"])
                for h, b in receiver.requests
            ]
            assert len(receiver.requests) == 2, seen
            assert len(mailbox.messages) == 2
            headers, body = receiver.requests[0]
            verify(hook["secret"], headers["x-jetbridge-signature"], body)
            first = json.loads(body)
            assert first["changed"] == ["gate"]
            assert first["flight"]["gate"] == "A7"
            assert "gate A7" in mailbox.messages[0]["Subject"]
            assert client.delete(f"/api/subscriptions/{hook['subscription_id']}").status_code == 204
            assert client.delete(f"/api/subscriptions/{mail['subscription_id']}").status_code == 204
            hub.apply_all([Update(FLIGHT, "aodb", T0 + timedelta(minutes=4), {"gate": "B2"})])
            time.sleep(1.0)
            assert len(receiver.requests) == 2
            assert len(mailbox.messages) == 2


def test_bad_subscriptions_are_rejected(sqlite_url: str) -> None:
    with TestClient(create_app(Settings(database_url=sqlite_url, run_workers=False))) as client:
        as_operator(client)
        cases = [
            ({"flight_key": "nope", "channel": "webhook", "url": "http://x"}, 422),
            ({"flight_key": FLIGHT.key, "channel": "sms"}, 422),
            ({"flight_key": FLIGHT.key, "channel": "webhook"}, 422),
            ({"flight_key": FLIGHT.key, "channel": "email", "email": "not-an-address"}, 422),
            ({"flight_key": FLIGHT.key, "channel": "webhook", "url": "http://x"}, 404),
        ]
        for body, status in cases:
            assert client.post("/api/subscriptions", json=body).status_code == status, body
        assert client.delete("/api/subscriptions/unknown").status_code == 404


def test_fan_outs_running_together_write_their_notices_in_shared_transactions(
    database_url: str,
) -> None:
    """A hub's wave of changes to followed flights: each follower hears its flight's change
    once, and the fan-outs' notices are group-committed, fewer transactions than fan-outs."""
    flights = [
        FlightIdentity.create(
            airline="LX",
            flight_number=str(1000 + n),
            origin_date="2026-11-24",
            departure_airport="ZRH",
            arrival_airport="LHR",
        )
        for n in range(30)
    ]
    with webhook_receiver() as receiver:
        settings = Settings(database_url=database_url, delivery_poll_seconds=0.05)
        app = create_app(settings)
        with TestClient(app) as client:
            as_operator(client)
            platform = app.state.platform
            hub = FlightHub(platform.backbone)
            hub.apply_all([Update(flight, "aodb", T0, {"gate": "A1"}) for flight in flights])
            for flight in flights:
                client.post(
                    "/api/subscriptions",
                    json={"flight_key": flight.key, "channel": "webhook", "url": receiver.url},
                ).raise_for_status()
            before = platform.backbone.intake.commits
            later = T0 + timedelta(minutes=1)
            with platform.backbone.transaction() as conn:  # one wave: committed together
                for flight in flights:
                    hub.apply(conn, Update(flight, "aodb", later, {"gate": "B9"}))
            wait_for(lambda: len(receiver.requests) >= len(flights), timeout=60)
            wait_for(lambda: platform.backbone.log.pending() == 0, timeout=60)
            fan_out_commits = platform.backbone.intake.commits - before
            heard = sorted(json.loads(body)["flight_key"] for _, body in receiver.requests)
            assert heard == sorted(flight.key for flight in flights)
            assert 1 <= fan_out_commits < len(flights), fan_out_commits
