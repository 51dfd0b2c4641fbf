"""The live page in real headless Chromium shows events as they are published."""

from __future__ import annotations

from typing import Any

from jetbridge.app import create_app
from jetbridge.config import Settings
from support.auth import browser_sign_in, user
from support.servers import serve_app


def test_live_page_streams_published_events(browser: Any, sqlite_url: str) -> None:
    app = create_app(Settings(database_url=sqlite_url))
    with serve_app(app) as base:
        page = browser.new_page()
        page.goto(f"{base}/")
        page.wait_for_selector("#sign-in", timeout=10_000)  # nobody signed in: no events
        user(app, "ops-zrh", "ops password 1", roles=("operations",), tenant="ZRH")
        user(app, "operator", "operator password 1", roles=("admin",))
        browser_sign_in(page, base, "ops-zrh", "ops password 1")
        page.goto(f"{base}/")
        page.wait_for_selector("#status:has-text('reconnecting')", timeout=10_000)
        # a tenant's operations staff cannot follow the platform's bus; the operator can
        page.context.clear_cookies()
        browser_sign_in(page, base, "operator", "operator password 1")
        page.goto(f"{base}/")
        page.wait_for_selector("#status:has-text('live')", timeout=10_000)
        backbone = app.state.platform.backbone
        entries = [
            {
                "specversion": "1.0",
                "source": "airport.gates",
                "type": "flight.gate_changed",
                "subject": f"LX{n}",
            }
            for n in range(3)
        ]
        backbone.put_events(bus="default", entries=entries)
        page.wait_for_function(
            "() => document.querySelectorAll('#rows tr').length === 3", timeout=10_000
        )
        cells = page.locator("#rows tr").first.locator("td").all_inner_texts()
        assert cells[2:] == ["airport.gates", "flight.gate_changed", "LX2"]
        page.close()
