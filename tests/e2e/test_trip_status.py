"""A flight from the schedule import, booked, then changed in the AODB: /trips in Chromium shows
the gate, the delay and the cancellation as they happen (SSE from the bus), with times local at
each airport and the zone shown; a guest's looked-up booking follows its flight the same way."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from jetbridge.app import create_app
from jetbridge.booking.catalog import ScheduleEntry
from jetbridge.booking.service import BookingRequest, Passenger
from jetbridge.config import Settings
from jetbridge.payments.test_provider import APPROVE, create_test_provider
from jetbridge.schedules import publish_schedule
from support.aodb import LegacyAodb
from support.auth import browser_sign_in, user
from support.servers import serve_app

DAY = (datetime.now(UTC) + timedelta(days=2)).date()


def _schedule() -> list[ScheduleEntry]:
    departure = datetime(DAY.year, DAY.month, DAY.day, 6, 40, tzinfo=UTC)
    return [
        ScheduleEntry(
            airline="LX", flight_number="318", origin="ZRH", destination="LHR",
            departure=departure, arrival=departure + timedelta(minutes=105),
            aircraft_type="A320", currency="CHF", fares={"economy": 15_000}, terminal="1",
            arrival_terminal="2", codeshares=["LH5790"],
        )
    ]  # fmt: skip


def _confirmed(platform: Any, customer: str, key: str, family: str) -> dict[str, Any]:
    request = BookingRequest(
        flight_id=f"LX0318-{DAY.isoformat()}", cabin="economy", customer_id=customer,
        passengers=[Passenger(given_name="Ada", family_name=family)],
    )  # fmt: skip
    booking, _ = platform.bookings.create(
        request=request, card=APPROVE, caller="tests", idempotency_key=key
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        found = platform.bookings.get(booking_id=booking["booking_id"])
        if found["status"] in {"confirmed", "failed"}:
            assert found["status"] == "confirmed"
            return dict(found)
        time.sleep(0.05)
    raise AssertionError("the booking did not settle")


def test_aodb_changes_reach_my_trips_live(browser: Any, sqlite_url: str, tmp_path: Path) -> None:
    with serve_app(create_test_provider()) as provider:
        app = create_app(Settings(database_url=sqlite_url, payments_url=provider))
        with serve_app(app) as base:
            platform = app.state.platform
            entries = _schedule()
            publish_schedule(platform.backbone, entries)
            ada = user(app, "ada", "analytical engine")
            mine = _confirmed(platform, ada["user_id"], "trip-status-0001", "Lovelace")
            guest = _confirmed(platform, "guest-1", "trip-status-0002", "Hopper")
            aodb = LegacyAodb(tmp_path, platform.backbone, entries)
            try:
                page = browser.new_page()
                browser_sign_in(page, base, "ada", "analytical engine")
                page.goto(f"{base}/trips")
                row = page.locator("#trips tr", has_text=mine["locator"])
                expect(row.locator(".flight-status")).to_have_text("scheduled, terminal 1")
                expect(row.locator(".departure")).to_have_text(
                    f"{DAY.isoformat()} 07:40 CET (ZRH, Europe/Zurich)"
                )
                expect(row.locator(".arrival")).to_have_text(
                    f"{DAY.isoformat()} 08:25 GMT (LHR, Europe/London)"
                )
                guest_page = browser.new_page()
                guest_page.goto(f"{base}/trips")
                guest_page.fill("#lookup-locator", guest["locator"])
                guest_page.fill("#lookup-family", "Hopper")
                guest_page.click("#lookup-button")
                found = guest_page.locator("#found-flight-status")
                expect(found).to_have_text("scheduled, terminal 1")

                mvt = aodb.movement_id("LX", "318")
                status = row.locator(".flight-status")
                aodb.change(mvt, GATE="B34")
                aodb.capture_until(lambda: "gate B34" in status.inner_text())
                expect(status).to_have_text("scheduled, terminal 1, gate B34")
                late = datetime(DAY.year, DAY.month, DAY.day, 7, 15, tzinfo=UTC)
                aodb.change(mvt, ETD_UTC=late, FLT_STATUS="DLY", DLY_CODE1="93", DLY_MIN1=35)
                aodb.capture_until(lambda: "35 min late" in status.inner_text())
                expect(status).to_have_text("delayed, 35 min late, terminal 1, gate B34")
                expect(row.locator(".departure")).to_have_text(
                    f"{DAY.isoformat()} 08:15 CET (ZRH, Europe/Zurich), planned 07:40"
                )
                expect(found).to_have_text("delayed, 35 min late, terminal 1, gate B34")
                aodb.change(mvt, FLT_STATUS="CNL", REMARK="CANCELLED")
                aodb.capture_until(lambda: status.inner_text() == "cancelled")
                expect(status).to_have_class("flight-status cancelled")
                expect(found).to_have_text("cancelled")
                guest_page.close()
                page.close()
            finally:
                aodb.close()
