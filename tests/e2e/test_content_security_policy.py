"""The pages run under their Content-Security-Policy in real headless Chromium: nothing of
theirs is blocked, while code injected into them is."""

from __future__ import annotations

from typing import Any

from jetbridge.app import create_app
from jetbridge.config import Settings
from support.servers import serve_app

# Runs before the page's own code, outside its policy: records every violation the page reports.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""

# For each page, a sign that its own script ran (the static HTML leaves these empty). Predicates
# are functions: Playwright evaluates an expression string with eval, which the policy forbids.
PAGES = {
    "/": "() => document.getElementById('sign-in') !== null",
    "/fids/ZRH": "() => document.getElementById('status').textContent === 'live'",
    "/book": "() => document.getElementById('date').value !== ''",
    "/trips": "() => !document.getElementById('signed-out').hidden",
    "/login": "() => document.getElementById('username') !== null",
}


def test_pages_work_under_their_policy_and_injected_code_is_blocked(
    browser: Any, sqlite_url: str
) -> None:
    app = create_app(Settings(database_url=sqlite_url, run_workers=False))
    with serve_app(app) as base:
        context = browser.new_context()
        context.add_init_script(RECORD_VIOLATIONS)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        for path, ready in PAGES.items():
            page.goto(f"{base}{path}")
            page.wait_for_function(ready, timeout=10_000)
            assert page.evaluate("window.__violations") == [], path
        assert errors == []
        page.goto(f"{base}/book")
        page.evaluate(
            """() => {
              const script = document.createElement("script");
              script.textContent = "window.__injected = true";
              document.body.appendChild(script);
              const style = document.createElement("div");
              style.setAttribute("style", "color: red");
              document.body.appendChild(style);
            }"""
        )
        page.wait_for_function("() => window.__violations.length >= 2", timeout=10_000)
        assert page.evaluate("window.__injected === undefined")
        directives = " ".join(page.evaluate("window.__violations"))
        assert "script-src" in directives and "style-src" in directives
        context.close()
