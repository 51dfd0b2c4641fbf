"""A booked flight cancelled in the legacy AODB, end to end: change capture -> the hub -> the
disruption workflow -> the passenger's email (real SMTP server) and /trips in Chromium showing
the cancellation and the held offers -> the offer taken on the page -> a new ticket on the new
flight, seat counts right on both flights, loyalty as it was."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from jetbridge.app import create_app
from jetbridge.booking.catalog import ScheduleEntry
from jetbridge.booking.service import BookingRequest, Passenger
from jetbridge.config import Settings
from jetbridge.payments.test_provider import APPROVE, create_test_provider
from jetbridge.schedules import publish_schedule
from support.aodb import LegacyAodb
from support.auth import bearer, browser_sign_in, user
from support.servers import free_port, serve_app, smtp_server

DAY = (datetime.now(UTC) + timedelta(days=2)).date()
CANCELLED = f"LX0318-{DAY.isoformat()}"
LATER = f"LX0320-{DAY.isoformat()}"


def _schedule() -> list[ScheduleEntry]:
    first = datetime(DAY.year, DAY.month, DAY.day, 6, 40, tzinfo=UTC)
    return [
        ScheduleEntry(
            airline="LX", flight_number=number, origin="ZRH", destination="LHR",
            departure=first + offset, arrival=first + offset + timedelta(minutes=105),
            aircraft_type="A320", currency="CHF", fares={"economy": 15_000}, terminal="1",
            arrival_terminal="2",
        )
        for number, offset in (("318", timedelta(0)), ("320", timedelta(hours=3)))
    ]  # fmt: skip


def wait_for(what: str, check: Any, timeout: float = 120) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_an_aodb_cancellation_is_rebooked_from_my_trips(
    browser: Any, sqlite_url: str, tmp_path: Path
) -> None:
    port = free_port()
    with smtp_server() as mailbox, serve_app(create_test_provider()) as provider:
        settings = Settings(
            database_url=sqlite_url,
            payments_url=provider,
            smtp_url=mailbox.url,
            public_url=f"http://127.0.0.1:{port}",
        )
        app = create_app(settings)
        with serve_app(app, port) as base:
            platform = app.state.platform
            entries = _schedule()
            publish_schedule(platform.backbone, entries)
            ada = user(app, "ada", "analytical engine")
            customer = ada["user_id"]
            api = httpx.Client(base_url=base, headers=bearer(app), timeout=30)
            request = BookingRequest(
                flight_id=CANCELLED, cabin="economy", customer_id=customer,
                passengers=[Passenger(given_name="Ada", family_name="Lovelace")],
            )  # fmt: skip
            created, _ = platform.bookings.create(
                request=request, card=APPROVE, caller="tests", idempotency_key="e2e-disrupt-1"
            )
            booking_id = created["booking_id"]
            booking = wait_for(
                "the booking to be confirmed",
                lambda: (
                    (b := api.get(f"/api/bookings/{booking_id}").json())["status"] == "confirmed"
                    and b
                ),
            )
            old_ticket = booking["tickets"][0]["ticket_number"]
            answer = api.put(
                f"/api/bookings/{booking_id}/contacts", json={"email": "ada@example.com"}
            )
            assert answer.status_code == 200, answer.text

            def seats_left(flight_id: str) -> int:
                offer = api.get(f"/api/flights/{flight_id}/offer").json()
                return int(offer["cabins"]["economy"]["seats_left"])

            points = api.get(f"/api/customers/{customer}/loyalty").json()["points"]
            assert points > 0
            seats_before = {CANCELLED: seats_left(CANCELLED), LATER: seats_left(LATER)}

            aodb = LegacyAodb(tmp_path, platform.backbone, entries)
            try:
                page = browser.new_page()
                console: list[str] = []
                page.on("console", lambda message: console.append(message.text))
                browser_sign_in(page, base, "ada", "analytical engine")
                page.goto(f"{base}/trips")
                row = page.locator("#trips tr[data-booking-id]", has_text=booking["locator"])
                expect(row.locator(".flight-status")).to_have_text("scheduled, terminal 1")
                expect(row.locator(".tickets")).to_have_text(old_ticket)

                # The AODB cancels the flight; the change capture carries it to the hub.
                aodb.change(aodb.movement_id("LX", "318"), FLT_STATUS="CNL", REMARK="CANCELLED")
                status = row.locator(".flight-status")
                aodb.capture_until(lambda: status.inner_text() == "cancelled", timeout=120)

                # The workflow holds seats on the later flight and emails the passenger.
                (mail,) = wait_for(
                    "the offers email",
                    lambda: [m for m in mailbox.messages if m["To"] == "ada@example.com"],
                )
                assert "LX318 ZRH-LHR is cancelled" in mail["Subject"]
                text = mail.get_payload(decode=True).decode()
                assert "We are holding seats for you on" in text and "LX320" in text

                # /trips shows the notice and the offers (read again when the flight changed).
                notice = page.locator(f"#trips tr.disruption[data-booking-id='{booking_id}']")
                expect(notice.locator(".disruption-notice")).to_contain_text(
                    "LX318 ZRH-LHR is cancelled", timeout=120_000
                )
                offer = notice.locator(".offer", has_text="LX320").first
                expect(offer).to_be_visible(timeout=120_000)
                held = seats_left(LATER)
                assert held < seats_before[LATER]  # seats held for the passenger
                with page.expect_response("**/api/disruptions/choice") as chosen:
                    offer.locator("button.accept-offer").click()
                assert chosen.value.status == 200, chosen.value.text()

                # Rebooked: the page shows the new flight and the new ticket.
                new_row = page.locator("#trips tr[data-booking-id]", has_text=booking["locator"])
                expect(new_row).to_contain_text("LX320", timeout=120_000)
                expect(notice.locator(".rebooked")).to_contain_text(LATER, timeout=120_000)
                rebooked = api.get(f"/api/bookings/{booking_id}").json()
                assert rebooked["flight_id"] == LATER and rebooked["status"] == "confirmed"
                new_ticket = rebooked["tickets"][0]["ticket_number"]
                assert new_ticket and new_ticket != old_ticket
                expect(new_row.locator(".tickets")).to_have_text(new_ticket)
                expect(notice.locator(".rebooked")).to_contain_text(new_ticket)
                page.close()
                assert not [t for t in console if "Content Security Policy" in t]
            finally:
                aodb.close()

            # One seat back on the cancelled flight, the held one sold on the new one (the
            # other offers' holds released); the loyalty account as it was.
            assert seats_left(CANCELLED) == seats_before[CANCELLED] + 1
            assert seats_left(LATER) == seats_before[LATER] - 1
            loyalty = api.get(f"/api/customers/{customer}/loyalty").json()
            assert loyalty["points"] == points
            assert [h["kind"] for h in loyalty["history"]] == ["award"]
