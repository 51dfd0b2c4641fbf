"""A passenger whose flight is cancelled opens the link from the email in headless Chromium,
takes another flight, and the booking moves with a new ticket."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from playwright.sync_api import expect

from jetbridge.app import create_app
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.config import Settings
from jetbridge.flights.hub import FlightHub
from jetbridge.flights.merge import Update
from jetbridge.flights.model import FlightIdentity
from jetbridge.payments.test_provider import APPROVE, create_test_provider
from support.auth import bearer
from support.servers import free_port, serve_app, smtp_server

LINK = re.compile(r"(http://\S+/disruption/choose\?link=\S+)")


def wait_for(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_emailed_link_lets_a_passenger_take_another_flight(
    browser: Any, sqlite_url: str
) -> None:
    day = (datetime.now(UTC) + timedelta(days=10)).date()
    flight = f"LX0100-{day.isoformat()}"
    port = free_port()
    with (
        smtp_server() as mailbox,
        serve_app(create_test_provider()) as provider,
    ):
        settings = Settings(
            database_url=sqlite_url,
            payments_url=provider,
            smtp_url=mailbox.url,
            public_url=f"http://127.0.0.1:{port}",
        )
        app = create_app(settings)
        with serve_app(app, port) as base:
            platform = app.state.platform
            with platform.backbone.transaction() as conn:
                import_schedule(conn, demo_schedule(start=day, days=1))
            api = httpx.Client(base_url=base, headers=bearer(app), timeout=30)
            created = api.post(
                "/api/bookings",
                headers={"Idempotency-Key": "e2e-disruption-1"},
                json={
                    "flight_id": flight, "cabin": "economy", "customer_id": "cust-e2e",
                    "passengers": [{"given_name": "Ada", "family_name": "Lovelace"}],
                    "payment": {"card": APPROVE},
                },
            ).json()  # fmt: skip
            booking_id = created["booking_id"]
            wait_for(
                "the booking",
                lambda: api.get(f"/api/bookings/{booking_id}").json()["status"] == "confirmed",
            )
            api.put(f"/api/bookings/{booking_id}/contacts", json={"email": "ada@example.com"})
            offer = api.get(f"/api/flights/{flight}/offer").json()
            identity = FlightIdentity.create(
                airline="LX", flight_number="100", origin_date=day,
                departure_airport="ZRH", arrival_airport="LHR",
            )  # fmt: skip
            now = datetime.now(UTC)
            FlightHub(platform.backbone).apply_all(
                [
                    Update(
                        identity, "aodb", now, {"times.off_block.scheduled": offer["departure"]}
                    ),
                    Update(identity, "aodb", now + timedelta(seconds=1), {"status": "cancelled"}),
                ]
            )
            (mail,) = wait_for("the email", lambda: list(mailbox.messages))
            url = LINK.search(mail.get_payload(decode=True).decode()).group(1)
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.goto(url)
            expect(page.locator("#offers")).to_contain_text("LX102")
            page.click("#accept-1")
            expect(page.locator("#done")).to_contain_text("we are rebooking you")
            wait_for(
                "the rebooking",
                lambda: (
                    api.get(f"/api/bookings/{booking_id}").json()["flight_id"]
                    == f"LX0102-{day.isoformat()}"
                ),
            )
            page.goto(url)
            expect(page.locator("#status")).to_have_text("rebooked")
            page.close()
            assert not [text for text in console if "Content Security Policy" in text]
