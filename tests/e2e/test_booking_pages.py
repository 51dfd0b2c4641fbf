"""A passenger books in real headless Chromium: search, choose, details, pay, PNR, my trips;
repeated clicks and retries book once; a guest finds a booking by locator and family name."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from jetbridge.app import Platform, create_app
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.booking.service import BookingRequest, Passenger
from jetbridge.config import Settings
from jetbridge.payments.test_provider import APPROVE, Ledger, create_test_provider
from jetbridge.storage.schema import bookings
from support.auth import browser_sign_in, user
from support.servers import serve_app


def test_search_book_pay_and_see_my_trip(browser: Any, sqlite_url: str) -> None:
    day = (datetime.now(UTC) + timedelta(days=2)).date()
    with serve_app(create_test_provider()) as provider:
        app = create_app(Settings(database_url=sqlite_url, payments_url=provider))
        with serve_app(app) as base:
            with app.state.platform.backbone.transaction() as conn:
                import_schedule(conn, demo_schedule(start=day, days=1))
            page = browser.new_page()
            page.goto(f"{base}/trips")
            page.wait_for_selector("#signed-out:not([hidden])", timeout=10_000)
            user(app, "ada", "analytical engine")
            user(app, "grace", "compiler pioneer")
            browser_sign_in(page, base, "ada", "analytical engine")
            page.goto(f"{base}/book")
            page.wait_for_selector(
                "#who:has-text('your account')", state="attached", timeout=10_000
            )
            page.fill("#date", day.isoformat())
            page.click("#search-button")
            page.locator("button.select").first.click()
            page.fill("#given", "Ada")
            page.fill("#family", "Lovelace")
            page.click("#pay")
            page.wait_for_selector("#status:has-text('confirmed')", timeout=20_000)
            locator = page.inner_text("#locator")
            assert len(locator) == 6
            assert page.inner_text("#outcome") == "Booking confirmed"
            page.goto(f"{base}/trips")
            row = page.locator("#trips tr", has_text=locator)
            row.wait_for(timeout=10_000)
            cells = row.locator("td").all_inner_texts()
            assert cells[2] == "confirmed"
            assert cells[1] == "LX100 ZRH\u2013LHR"
            # another passenger sees none of Ada's trips
            page.context.clear_cookies()
            browser_sign_in(page, base, "grace", "compiler pioneer")
            page.goto(f"{base}/trips")
            page.wait_for_selector("#mine:not([hidden])", timeout=10_000)
            assert page.locator("#trips tr").count() == 0
            page.context.clear_cookies()  # a guest books too, and follows it with its token
            page.goto(f"{base}/book")
            page.fill("#date", day.isoformat())
            page.click("#search-button")
            page.locator("button.select").first.click()
            page.fill("#given", "Bad")
            page.fill("#family", "Card")
            page.fill("#card", "4000 0000 0000 0002")
            page.click("#pay")
            page.wait_for_selector("#status:has-text('failed')", timeout=20_000)
            assert page.inner_text("#outcome") == "Booking not completed"
            page.close()


@contextmanager
def pages(sqlite_url: str, ledger: Ledger, day: date) -> Iterator[tuple[str, Platform]]:
    """The platform serving its pages, with a day of flights and a test payment provider."""
    with serve_app(create_test_provider(ledger)) as provider:
        app = create_app(Settings(database_url=sqlite_url, payments_url=provider))
        with serve_app(app) as base:
            with app.state.platform.backbone.transaction() as conn:
                import_schedule(conn, demo_schedule(start=day, days=1))
            yield base, app.state.platform


def choose_a_flight(page: Any, base: str, day: date) -> None:
    page.goto(f"{base}/book")
    page.fill("#date", day.isoformat())
    page.click("#search-button")
    page.locator("button.select").first.click()
    page.fill("#given", "Ada")
    page.fill("#family", "Lovelace")


def booking_count(platform: Platform) -> int:
    with platform.backbone.reading() as conn:
        return int(conn.execute(select(func.count()).select_from(bookings)).scalar_one())


def keys_sent(page: Any) -> list[str]:
    """The Idempotency-Key of every booking request the page sends, in order."""
    keys: list[str] = []

    def record(request: Any) -> None:
        if request.method == "POST" and request.url.endswith("/api/bookings"):
            keys.append(request.headers["idempotency-key"])

    page.on("request", record)
    return keys


@pytest.mark.parametrize("clicks", [2, 3])
def test_repeated_clicks_on_pay_book_and_charge_once(
    browser: Any, sqlite_url: str, clicks: int
) -> None:
    day = (datetime.now(UTC) + timedelta(days=3)).date()
    ledger = Ledger()
    with pages(sqlite_url, ledger, day) as (base, platform):
        page = browser.new_page()
        keys = keys_sent(page)
        choose_a_flight(page, base, day)
        page.click("#pay", click_count=clicks)
        expect(page.locator("#status")).to_have_text("confirmed", timeout=20_000)
        assert booking_count(platform) == 1
        assert [intent["status"] for intent in ledger.intents.values()] == ["succeeded"]
        assert len(keys) >= 1 and len(set(keys)) == 1
        expect(page.locator("#pay")).to_be_disabled()
        page.close()


def test_pay_retried_after_a_lost_answer_is_the_same_booking(browser: Any, sqlite_url: str) -> None:
    day = (datetime.now(UTC) + timedelta(days=3)).date()
    ledger = Ledger()
    with pages(sqlite_url, ledger, day) as (base, platform):
        page = browser.new_page()
        keys = keys_sent(page)
        routed: list[str] = []

        def lose_the_first_answer(route: Any) -> None:
            routed.append(route.request.headers["idempotency-key"])
            if len(routed) == 1:
                route.fetch()  # the platform books...
                route.abort("connectionreset")  # ...and the answer never reaches the page
            else:
                route.continue_()

        page.route("**/api/bookings", lose_the_first_answer)
        choose_a_flight(page, base, day)
        page.click("#pay")
        expect(page.locator("#pay-error")).to_contain_text("will not book twice")
        expect(page.locator("#pay")).to_be_enabled()
        assert booking_count(platform) == 1
        page.click("#pay")
        expect(page.locator("#status")).to_have_text("confirmed", timeout=20_000)
        assert len(keys) == 2 and keys[0] == keys[1] == routed[0]
        assert booking_count(platform) == 1
        assert len(ledger.intents) == 1
        first_locator = page.inner_text("#locator")
        page.locator("button.select").first.click()  # another checkout: another key
        expect(page.locator("#pay")).to_be_enabled()
        page.click("#pay")
        expect(page.locator("#locator")).not_to_have_text(first_locator)
        assert len(keys) == 3 and keys[2] != keys[0]
        assert booking_count(platform) == 2
        page.close()


def test_a_guest_finds_a_booking_by_record_locator_and_family_name(
    browser: Any, sqlite_url: str
) -> None:
    day = (datetime.now(UTC) + timedelta(days=3)).date()
    with pages(sqlite_url, Ledger(), day) as (base, platform):
        assert platform.bookings is not None
        request = BookingRequest(
            flight_id=f"LX0100-{day.isoformat()}", cabin="economy", customer_id="someone-else",
            passengers=[Passenger(given_name="Ada", family_name="Lovelace")],
        )  # fmt: skip
        booking, _ = platform.bookings.create(
            request=request, card=APPROVE, caller="anonymous", idempotency_key="guest-00001"
        )
        page = browser.new_page()
        urls: list[str] = []
        page.on("request", lambda sent: urls.append(sent.url))
        page.goto(f"{base}/trips")
        page.fill("#lookup-locator", booking["locator"].lower())
        page.fill("#lookup-family", "LOVELACE")
        page.click("#lookup-button")
        expect(page.locator("#lookup-result")).to_be_visible()
        expect(page.locator("#found-locator")).to_have_text(booking["locator"])
        expect(page.locator("#found-flight")).to_have_text(booking["flight_id"])
        expect(page.locator("#found-passengers li")).to_have_text(["Ada Lovelace"])
        page.fill("#lookup-family", "Byron")
        page.click("#lookup-button")
        expect(page.locator("#lookup-error")).to_have_text(
            "no booking matches that record locator and family name"
        )
        expect(page.locator("#lookup-result")).to_be_hidden()
        page.fill("#lookup-locator", "AB")
        page.click("#lookup-button")
        expect(page.locator("#lookup-error")).to_contain_text("6-character record locator")
        assert not any("ovelace" in url.lower() or "byron" in url.lower() for url in urls)
        page.close()
