"""A passenger books in real headless Chromium: search, choose, details, pay, PNR, my trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jetbridge.app import create_app
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.config import Settings
from jetbridge.payments.test_provider import create_test_provider
from support.servers import serve_app


def test_search_book_pay_and_see_my_trip(browser: Any, sqlite_url: str) -> None:
    day = (datetime.now(UTC) + timedelta(days=2)).date()
    with serve_app(create_test_provider()) as provider:
        app = create_app(Settings(database_url=sqlite_url, payments_url=provider))
        with serve_app(app) as base:
            with app.state.platform.backbone.transaction() as conn:
                import_schedule(conn, demo_schedule(start=day, days=1))
            page = browser.new_page()
            page.goto(f"{base}/book")
            page.fill("#date", day.isoformat())
            page.click("#search-button")
            page.locator("button.select").first.click()
            page.fill("#given", "Ada")
            page.fill("#family", "Lovelace")
            page.fill("#customer", "ada-1")
            page.click("#pay")
            page.wait_for_selector("#status:has-text('confirmed')", timeout=20_000)
            locator = page.inner_text("#locator")
            assert len(locator) == 6
            assert page.inner_text("#outcome") == "Booking confirmed"
            page.goto(f"{base}/trips?customer=ada-1")
            row = page.locator("#trips tr", has_text=locator)
            row.wait_for(timeout=10_000)
            cells = row.locator("td").all_inner_texts()
            assert cells[2] == "confirmed"
            assert cells[1].startswith("LX0100-")
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
