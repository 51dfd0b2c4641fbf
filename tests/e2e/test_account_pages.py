"""Sign in, my account and sign out in real headless Chromium."""

from __future__ import annotations

from typing import Any

from jetbridge.app import create_app
from jetbridge.config import Settings
from support.auth import user
from support.servers import serve_app


def test_sign_in_see_my_account_and_sign_out(browser: Any, sqlite_url: str) -> None:
    app = create_app(Settings(database_url=sqlite_url, run_workers=False))
    with serve_app(app) as base:
        user(app, "olga", "ops passphrase 1", roles=("operations",), tenant="ZRH")
        page = browser.new_page()
        page.goto(f"{base}/account")
        page.wait_for_url(f"{base}/login?next=/account")  # nobody signed in yet
        page.fill("#username", "olga")
        page.fill("#password", "not her password")
        page.click("#sign-in")
        page.wait_for_selector("#error")
        assert "wrong password" in page.inner_text("#error")
        page.fill("#username", "olga")
        page.fill("#password", "ops passphrase 1")
        page.click("#sign-in")
        page.wait_for_url(f"{base}/account")
        assert page.inner_text("#account-name") == "olga"
        assert page.inner_text("#account-roles") == "operations"
        cookie = next(c for c in page.context.cookies() if c["name"] == "jb_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        assert page.evaluate("() => document.cookie").find("jb_session") == -1
        page.click("#sign-out")
        page.wait_for_url(f"{base}/login")
        page.goto(f"{base}/account")
        page.wait_for_url(f"{base}/login?next=/account")
        page.close()
