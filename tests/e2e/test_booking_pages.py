"""A passenger books in real headless Chromium: search, choose, details, pay, PNR, my trips;
repeated clicks and retries book once; a guest finds a booking by locator and family name."""

from __future__ import annotations

import re
import time
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
            # The traveller form is complete once the chosen flight's seat map is drawn.
            page.wait_for_selector("#seatmap button.seat", timeout=30_000)
            page.fill("#given", "Ada")
            page.fill("#family", "Lovelace")
            page.click("#pay")
            page.wait_for_selector("#status:has-text('confirmed')", timeout=30_000)
            locator = page.inner_text("#locator")
            assert len(locator) == 6
            assert page.inner_text("#outcome") == "Booking confirmed"
            expect(page.locator("#loyalty")).to_have_text(
                re.compile(r"^[0-9,]+ points · bronze tier$")
            )
            assert not page.inner_text("#loyalty").startswith("0 ")
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
            page.wait_for_selector("#seatmap button.seat", timeout=30_000)
            page.fill("#given", "Bad")
            page.fill("#family", "Card")
            page.fill("#card", "4000 0000 0000 0002")
            page.click("#pay")
            page.wait_for_selector("#status:has-text('failed')", timeout=30_000)
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
    # The traveller form is complete once the chosen flight's seat map is drawn.
    page.wait_for_selector("#seatmap button.seat", timeout=30_000)
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
        # the second booking is confirmed under a record locator of its own
        expect(page.locator("#locator-line")).to_be_visible()
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


def search_and_choose(page: Any, base: str, day: date) -> None:
    page.goto(f"{base}/book")
    page.fill("#date", day.isoformat())
    page.click("#search-button")
    page.locator("button.select[data-cabin='economy']").first.click()
    page.wait_for_selector("#seatmap button.seat", timeout=10_000)


def book_one(page: Any, base: str, day: date, card: str = "4242 4242 4242 4242") -> None:
    search_and_choose(page, base, day)
    page.fill("#given", "Ada")
    page.fill("#family", "Lovelace")
    page.fill("#card", card)
    page.click("#pay")


def test_several_travellers_choose_their_seats_on_the_seat_map(
    browser: Any, sqlite_url: str
) -> None:
    day = (datetime.now(UTC) + timedelta(days=3)).date()
    with pages(sqlite_url, Ledger(), day) as (base, platform):
        taken = BookingRequest(
            flight_id=f"LX0100-{day.isoformat()}", cabin="economy", customer_id="someone-else",
            passengers=[Passenger(given_name="Alan", family_name="Turing", seat="12C")],
        )  # fmt: skip
        platform.bookings.create(
            request=taken, card=APPROVE, caller="anonymous", idempotency_key="seat-taken-01"
        )
        page = browser.new_page()
        search_and_choose(page, base, day)
        expect(page.locator("#results tbody tr").first).to_contain_text("Europe/Zurich")
        expect(page.locator("#results tbody tr").first).to_contain_text("Europe/London")
        page.select_option("#count", "3")
        for n, (given, family) in enumerate([("Ada", "Lovelace"), ("Charles", "Babbage"),
                                             ("Mary", "Somerville")]):  # fmt: skip
            suffix = f"-{n + 1}" if n else ""
            page.fill(f"#given{suffix}", given)
            page.fill(f"#family{suffix}", family)
        occupied = page.locator("#seatmap button[data-seat='12C']")
        expect(occupied).to_be_disabled()
        expect(occupied).to_have_class("seat taken")
        page.locator(".passenger .pick").first.click()
        for seat in ("12A", "12B", "12D"):  # each click seats the next traveller
            page.click(f"#seatmap button[data-seat='{seat}']")
        expect(page.locator(".passenger .pick")).to_have_text(["Seat 12A", "Seat 12B", "Seat 12D"])
        page.click("#pay")
        expect(page.locator("#outcome")).to_have_text("Booking confirmed", timeout=20_000)
        rows = page.locator("#tickets tr")
        expect(rows).to_have_count(3)
        cells = [rows.nth(n).locator("td").all_inner_texts() for n in range(3)]
        assert [c[0] for c in cells] == ["Ada Lovelace", "Charles Babbage", "Mary Somerville"]
        assert [c[2] for c in cells] == ["12A", "12B", "12D"]
        assert all(len(c[1]) == 13 and c[1].isdigit() for c in cells)
        expect(page.locator("#trip-flight")).to_contain_text("(Europe/Zurich)")
        # the traveller moves seats on the map after booking; the old seat is free again
        page.click("#seats-button")
        page.click("#reseat-map button[data-seat='20F']")
        page.click("#reseat-save")
        expect(page.locator("#trip-message")).to_have_text("Your seats are changed.")
        expect(page.locator("#tickets tr").first.locator("td").nth(2)).to_have_text("20F")
        page.close()


def test_a_declined_card_says_why_and_shows_no_record_locator(
    browser: Any, sqlite_url: str
) -> None:
    day = (datetime.now(UTC) + timedelta(days=3)).date()
    with pages(sqlite_url, Ledger(), day) as (base, _):
        page = browser.new_page()
        book_one(page, base, day, card="4000 0000 0000 9995")
        expect(page.locator("#outcome")).to_have_text("Booking not completed", timeout=20_000)
        expect(page.locator("#failure")).to_have_text(
            "Your card was declined: the account does not have enough funds. "
            "Nothing was charged. Pay with another card."
        )
        expect(page.locator("#locator-line")).to_be_hidden()
        expect(page.locator("#pay")).to_be_enabled()
        page.close()


def test_invalid_details_say_what_to_fix_in_words(browser: Any, sqlite_url: str) -> None:
    day = (datetime.now(UTC) + timedelta(days=3)).date()
    with pages(sqlite_url, Ledger(), day) as (base, platform):
        page = browser.new_page()
        page.goto(f"{base}/book")
        page.fill("#origin", "Z1")
        page.click("#search-button")
        expect(page.locator("#search-error")).to_have_text(
            "From: enter the airport's three-letter code, such as ZRH."
        )
        search_and_choose(page, base, day)
        page.select_option("#count", "2")
        page.fill("#given", "Ada")
        page.fill("#family", "Lovelace")
        page.click("#pay")
        expect(page.locator("#pay-error")).to_have_text(
            "Traveller 2: enter the given name as in the passport."
        )
        page.fill("#given-2", "Charles")
        page.fill("#family-2", "Babbage")
        page.locator(".passenger .pick").first.click()
        page.click("#seatmap button[data-seat='9A']")
        page.click("#pay")
        expect(page.locator("#pay-error")).to_have_text(
            "Pick a seat for every traveller, or for none: traveller 2 has no seat yet."
        )
        # The server's answers are in words too: a seat someone took meanwhile.
        page.click("#seatmap button[data-seat='9B']")
        taken = BookingRequest(
            flight_id=f"LX0100-{day.isoformat()}", cabin="economy", customer_id="someone-else",
            passengers=[Passenger(given_name="Alan", family_name="Turing", seat="9B")],
        )  # fmt: skip
        platform.bookings.create(
            request=taken, card=APPROVE, caller="anonymous", idempotency_key="seat-taken-02"
        )
        page.click("#pay")
        expect(page.locator("#pay-error")).to_have_text(
            "Traveller 2 seat: 9B is taken; choose another seat"
        )
        expect(page.locator("#confirmation")).to_be_hidden()
        assert booking_count(platform) == 1
        page.close()


def test_cancel_shows_the_refund_before_confirming(browser: Any, sqlite_url: str) -> None:
    day = (datetime.now(UTC) + timedelta(days=10)).date()
    with pages(sqlite_url, Ledger(), day) as (base, _):
        page = browser.new_page()
        book_one(page, base, day)
        expect(page.locator("#outcome")).to_have_text("Booking confirmed", timeout=20_000)
        paid = page.inner_text("#trip-paid")
        page.click("#cancel-button")
        expect(page.locator("#refund-quote")).to_have_text(
            f"If you cancel now you get back {paid} of the {paid} paid "
            "(within 24 hours of booking: full refund)."
        )
        expect(page.locator("#trip-status")).to_have_text("confirmed")
        page.click("#confirm-cancel")
        expect(page.locator("#trip-status")).to_have_text("cancelled")
        expect(page.locator("#trip-message")).to_have_text(
            f"Cancelled. {paid} will be refunded to your card."
        )
        expect(page.locator("#trip-actions")).to_be_hidden()
        page.close()


def test_change_to_another_flight_with_the_fare_difference(browser: Any, sqlite_url: str) -> None:
    day = (datetime.now(UTC) + timedelta(days=10)).date()
    with pages(sqlite_url, Ledger(), day) as (base, platform):
        page = browser.new_page()
        book_one(page, base, day)
        expect(page.locator("#outcome")).to_have_text("Booking confirmed", timeout=20_000)
        page.click("#change-button")
        page.click("#change-search")
        page.locator("button.change-to").first.click()
        expect(page.locator("#change-quote")).to_contain_text("new total")
        quote = page.inner_text("#change-quote")
        assert "the fare is the same" in quote or "more" in quote or "get back" in quote
        page.click("#confirm-change")
        later = f"LX0101-{day.isoformat()}"
        expect(page.locator("#trip-message")).to_have_text(f"Changed to {later}.")
        expect(page.locator("#trip-flight")).to_contain_text("LX101 ZRH")
        booked = platform.bookings.of_customer(customer_id=platform_customer(platform))
        assert [b["flight_id"] for b in booked] == [later]
        page.close()


def platform_customer(platform: Platform) -> str:
    with platform.backbone.reading() as conn:
        return str(conn.execute(select(bookings.c.customer_id)).scalar_one())


def test_a_guest_manages_a_booking_by_record_locator(browser: Any, sqlite_url: str) -> None:
    day = (datetime.now(UTC) + timedelta(days=10)).date()
    with pages(sqlite_url, Ledger(), day) as (base, platform):
        request = BookingRequest(
            flight_id=f"LX0100-{day.isoformat()}", cabin="economy", customer_id="guest-x",
            passengers=[Passenger(given_name="Ada", family_name="Lovelace", seat="6A"),
                        Passenger(given_name="Byron", family_name="Lovelace", seat="6B")],
        )  # fmt: skip
        booking, _ = platform.bookings.create(
            request=request, card=APPROVE, caller="anonymous", idempotency_key="manage-0001"
        )
        page = browser.new_page()
        page.goto(f"{base}/book")
        page.fill("#manage-locator", "AB")
        page.click("#manage-button")
        expect(page.locator("#manage-error")).to_have_text(
            "Record locator: enter its six letters and digits."
        )
        page.fill("#manage-locator", booking["locator"])
        page.fill("#manage-family", "lovelace")
        page.click("#manage-button")
        expect(page.locator("#trip-locator")).to_have_text(booking["locator"])
        expect(page.locator("#trip-flight")).to_contain_text("(Europe/London)")
        # once the saga has confirmed it, the e-tickets carry the seats chosen when booking
        settled(platform, booking["booking_id"])
        page.click("#manage-button")
        expect(page.locator("#trip-status")).to_have_text("confirmed")
        seats = [row.locator("td").nth(2).inner_text() for row in page.locator("#tickets tr").all()]
        assert seats == ["6A", "6B"]
        page.close()


def settled(platform: Platform, booking_id: str) -> None:
    deadline = time.monotonic() + 30
    while platform.bookings.get(booking_id=booking_id)["status"] != "confirmed":
        assert time.monotonic() < deadline, "the booking was not confirmed"
        time.sleep(0.05)
