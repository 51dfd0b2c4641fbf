"""A flight from the schedule import, booked, then changed in the AODB: /trips in Chromium shows
the gate, the delay and the cancellation as they happen (SSE from the bus), with times local at
each airport and the zone shown; a guest's looked-up booking follows its flight the same way,
and shows its disruption with the offers held (a connection via a hub), taken on the page."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from jetbridge.app import create_app
from jetbridge.booking.catalog import ScheduleEntry
from jetbridge.booking.service import BookingRequest, Passenger
from jetbridge.config import Settings
from jetbridge.flights.hub import FlightHub
from jetbridge.flights.merge import Update
from jetbridge.flights.model import FlightIdentity
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


def _confirmed(
    platform: Any, customer: str, key: str, family: str, flight: str = "LX0318"
) -> dict[str, Any]:
    request = BookingRequest(
        flight_id=f"{flight}-{DAY.isoformat()}", cabin="economy", customer_id=customer,
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


def _network() -> list[ScheduleEntry]:
    """GVA-BCN has one flight; via MUC a connection of 90 minutes, and one of 30 (too short)."""

    def leg(number: str, route: str, departs: str, arrives: str) -> ScheduleEntry:
        def at(clock: str) -> datetime:
            return datetime.combine(DAY, datetime.strptime(clock, "%H:%M").time(), tzinfo=UTC)

        return ScheduleEntry(
            airline="LX", flight_number=number, origin=route[:3], destination=route[4:],
            departure=at(departs), arrival=at(arrives), aircraft_type="A320", currency="CHF",
            fares={"economy": 12_000},
        )  # fmt: skip

    return [
        leg("900", "GVA-BCN", "09:00", "10:40"),
        leg("910", "GVA-MUC", "09:30", "10:30"),
        leg("920", "MUC-BCN", "11:00", "13:00"),
        leg("922", "MUC-BCN", "12:00", "14:00"),
    ]


def test_a_guest_sees_the_disruption_and_takes_a_connection(browser: Any, sqlite_url: str) -> None:
    with serve_app(create_test_provider()) as provider:
        app = create_app(Settings(database_url=sqlite_url, payments_url=provider))
        with serve_app(app) as base:
            platform = app.state.platform
            publish_schedule(platform.backbone, _network())
            guest = _confirmed(platform, "guest-9", "trip-status-0009", "Hopper", flight="LX0900")
            (old_ticket,) = [t["ticket_number"] for t in guest["tickets"]]
            page = browser.new_page()
            page.goto(f"{base}/trips")
            page.fill("#lookup-locator", guest["locator"])
            page.fill("#lookup-family", "Hopper")
            page.click("#lookup-button")
            expect(page.locator("#found-flight-status")).to_have_text("scheduled")
            expect(page.locator("#found-tickets")).to_have_text(old_ticket)
            expect(page.locator("#found-disruption")).to_be_hidden()

            identity = FlightIdentity.create(
                airline="LX", flight_number="0900", origin_date=DAY,
                departure_airport="GVA", arrival_airport="BCN",
            )  # fmt: skip
            FlightHub(platform.backbone).apply_all(
                [Update(identity, "aodb", datetime.now(UTC), {"status": "cancelled"})]
            )
            expect(page.locator("#found-flight-status")).to_have_text("cancelled")
            notice = page.locator("#found-disruption")
            expect(notice.locator(".disruption-notice")).to_contain_text(
                "LX900 GVA-BCN is cancelled", timeout=120_000
            )
            # The one connection that respects Munich's minimum connection time.
            offers = notice.locator(".offer")
            expect(offers).to_have_count(1, timeout=120_000)
            expect(offers.first).to_contain_text("LX910/LX922 GVA\u2013BCN via MUC")
            with page.expect_response("**/api/disruptions/choice") as chosen:
                offers.first.locator("button.accept-offer").click()
            assert chosen.value.status == 200, chosen.value.text()

            # Both legs are the guest's trip now, on a new ticket.
            legs = page.locator("#found-segments li.segment .segment-flight")
            expect(legs).to_have_text(["LX910 GVA\u2013MUC", "LX922 MUC\u2013BCN"], timeout=120_000)
            expect(page.locator("#found-flight")).to_have_text(
                f"LX0910-{DAY.isoformat()} + LX0922-{DAY.isoformat()}"
            )
            expect(notice.locator(".rebooked")).to_contain_text(
                f"Rebooked on LX0910-{DAY.isoformat()} + LX0922-{DAY.isoformat()}"
            )
            expect(page.locator("#found-tickets")).not_to_have_text(old_ticket)
            expect(page.locator("#found-tickets")).to_have_text(re.compile(r"^\d{13}$"))
            page.close()
