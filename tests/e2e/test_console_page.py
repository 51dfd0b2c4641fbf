"""The operations console in real headless Chromium: the live tail and its filter, a pattern
tried against recent events, an edited dead letter redriven, and an execution's graph drawn
with its failed state highlighted (checked on a screenshot)."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import httpx
from PIL import Image

from jetbridge.app import create_app
from jetbridge.config import Settings
from support import handlers
from support.auth import bearer, browser_sign_in, user
from support.servers import serve_app

FAILING = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {"Type": "Pass", "Next": "Charge"},
        "Charge": {"Type": "Fail", "Error": "CardDeclined", "Cause": "on purpose"},
    },
}


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def gate(n: int, value: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "source": "airport.gates",
        "type": "flight.gate_changed",
        "subject": f"LX{n}",
        "data": {"gate": value},
    }


def colour_share(png: bytes, colour: tuple[int, int, int]) -> float:
    """How much of the picture is (nearly) `colour`."""
    data = Image.open(io.BytesIO(png)).convert("RGB").tobytes()
    pixels = [data[i : i + 3] for i in range(0, len(data), 3)]
    near = sum(1 for p in pixels if all(abs(a - b) <= 6 for a, b in zip(p, colour, strict=True)))
    return near / len(pixels)


def test_console_tails_tries_redrives_and_draws(browser: Any, sqlite_url: str) -> None:
    handlers.reset()
    settings = Settings(
        database_url=sqlite_url,
        retry_base_seconds=0.02,
        retry_max_backoff_seconds=0.1,
        delivery_poll_seconds=0.02,
        alarm_interval_seconds=0.2,
    )
    app = create_app(settings, handlers=handlers.HANDLERS)
    platform = app.state.platform
    with serve_app(app) as base:
        user(app, "operator", "operator password 1", roles=("admin",))
        page = browser.new_page()
        page.goto(f"{base}/console")
        page.wait_for_selector("#sign-in", timeout=10_000)
        browser_sign_in(page, base, "operator", "operator password 1")
        page.goto(f"{base}/console")
        page.wait_for_selector("#tail-status:has-text('live')", timeout=15_000)

        # the live tail, then the same tail filtered by a pattern
        platform.backbone.put_events(bus="default", entries=[gate(n, "A1") for n in range(2)])
        page.wait_for_function(
            "() => document.querySelectorAll('#tail-rows tr').length >= 2", timeout=15_000
        )
        page.fill("#tail-pattern", '{"detail": {"gate": ["B7"]}}')
        page.click("#tail-apply")
        page.wait_for_selector("#tail-status:has-text('live')", timeout=15_000)
        platform.backbone.put_events(
            bus="default", entries=[gate(10, "A1"), gate(11, "B7"), gate(12, "A1")]
        )
        page.wait_for_function(
            "() => document.querySelectorAll('#tail-rows tr').length === 1", timeout=15_000
        )
        assert page.locator("#tail-rows tr td").nth(4).inner_text() == "LX11"

        # a pattern tried on recent events; an invalid one says what is wrong
        page.click("#tabs button[data-tab=rules]")
        page.fill("#rule-pattern", '{"detail": {"gate": ["A1"]}}')
        page.click("#rule-test")
        page.wait_for_selector("#rule-result:has-text('matches 4 of the last')", timeout=10_000)
        page.fill("#rule-pattern", '{"detail": {"gate": [{"prefix": 5}]}}')
        page.click("#rule-test")
        page.wait_for_selector("#rule-result.error:has-text('prefix')", timeout=10_000)

        # a dead letter edited and redriven to its (now working) target
        failing = {
            "id": "down",
            "kind": "python",
            "handler": "always-fails",
            "retry_policy": {"maximum_retry_attempts": 0, "maximum_event_age_seconds": 3600},
        }
        from jetbridge.events import registry
        from jetbridge.events.specs import RuleSpec

        with platform.backbone.transaction() as conn:
            spec = RuleSpec(
                name="down", event_pattern={"source": ["airport.ops"]}, targets=[failing]
            )
            registry.put_rule(conn, bus="default", spec=spec, handlers=platform.backbone.handlers)
        event = {**gate(20, "Z9"), "source": "airport.ops"}
        platform.backbone.put_events(bus="default", entries=[event])
        wait_for(lambda: platform.backbone.log.pending() == 0 and _letters(platform))
        with platform.backbone.transaction() as conn:
            fixed = RuleSpec(
                name="down",
                event_pattern={"source": ["airport.ops"]},
                targets=[{**failing, "handler": "record"}],
            )
            registry.put_rule(conn, bus="default", spec=fixed, handlers=platform.backbone.handlers)
        page.click("#tabs button[data-tab=dlq]")
        page.wait_for_selector("#dlq-rows tr", timeout=10_000)
        page.locator("#dlq-rows tr button:has-text('Inspect')").first.click()
        edited = page.input_value("#dlq-event").replace('"Z9"', '"Z10"')
        page.fill("#dlq-event", edited)
        page.click("#dlq-redrive-edited")
        page.wait_for_function(
            "() => document.querySelector('#dlq-result').textContent.includes('as edited')"
            " || document.querySelector('#problem').textContent",
            timeout=10_000,
        )
        assert page.inner_text("#problem") == ""
        (received,) = wait_for(lambda: handlers.RECEIVED["record"])
        assert received["detail"] == {"gate": "Z10"}

        # an execution's graph, its failed state highlighted
        engine = platform.workflows
        engine.start(name="declined", definition=FAILING, input={})
        wait_for(lambda: engine.describe(name="declined")["status"] == "FAILED")
        page.click("#tabs button[data-tab=executions]")
        page.wait_for_selector("#exec-rows a:has-text('declined')", timeout=10_000)
        page.click("#exec-rows a:has-text('declined')")
        page.wait_for_selector("g[data-state=Charge][data-status=failed]", timeout=10_000)
        assert page.get_attribute("g[data-state=Prepare]", "data-status") == "succeeded"
        shot = page.locator("#graph-svg").screenshot()
        assert colour_share(shot, (0xF6, 0xC3, 0xC3)) > 0.02  # the failed state's fill
        assert colour_share(shot, (0xCF, 0xE9, 0xD8)) > 0.02  # the succeeded state's fill
        assert page.locator("#exec-history tr").count() >= 4

        # the alarms (the dead letter above trips the DLQ alarm) and the last hour's charts
        wait_for(lambda: any(a["state"] == "ALARM" for a in platform.monitor.states()))
        page.click("#tabs button[data-tab=alarms]")
        page.wait_for_selector("#alarm-rows tr.alarm", timeout=20_000)
        assert page.locator("#alarm-rows tr").count() >= 7
        page.wait_for_selector(".chart[data-series=events_put_per_second]", timeout=20_000)
        wait_for(lambda: len(platform.monitor.series("events_put_per_second", since=0)) >= 2)
        page.click("#alarms-refresh")
        page.wait_for_selector(".chart[data-series=events_put_per_second] polyline", timeout=20_000)
        page.wait_for_function(
            "() => document.querySelectorAll('.chart').length === 8", timeout=20_000
        )
        page.close()


def _letters(platform: Any) -> bool:
    from jetbridge.events import dlq

    with platform.backbone.reading() as conn:
        return bool(dlq.list_dead_letters(conn))


SOMETIMES_FAILING = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {"Type": "Pass", "Next": "Charge"},
        "Charge": {"Type": "Task", "Resource": "sometimes", "End": True},
    },
}


def test_console_redrives_a_failed_execution(browser: Any, sqlite_url: str) -> None:
    handlers.reset()
    attempts: list[Any] = []

    def sometimes(payload: Any) -> str:
        attempts.append(payload)
        if len(attempts) == 1:
            raise RuntimeError("declined the first time")
        return "charged"

    settings = Settings(database_url=sqlite_url)
    app = create_app(settings, handlers={**handlers.HANDLERS, "sometimes": sometimes})
    platform = app.state.platform
    with serve_app(app) as base:
        user(app, "operator", "operator password 1", roles=("admin",))
        engine = platform.workflows
        engine.start(name="charge-1", definition=SOMETIMES_FAILING, input={})
        wait_for(lambda: engine.describe(name="charge-1")["status"] == "FAILED")
        page = browser.new_page()
        page.goto(f"{base}/console")
        page.wait_for_selector("#sign-in", timeout=10_000)
        browser_sign_in(page, base, "operator", "operator password 1")
        page.goto(f"{base}/console")
        page.click("#tabs button[data-tab=executions]")
        page.wait_for_selector("#exec-rows a:has-text('charge-1')", timeout=10_000)
        page.click("#exec-rows a:has-text('charge-1')")
        page.wait_for_selector("g[data-state=Charge][data-status=failed]", timeout=10_000)
        assert page.is_hidden("#exec-stop")
        assert page.is_visible("#exec-redrive")
        page.click("#exec-redrive")
        wait_for(lambda: engine.describe(name="charge-1")["status"] == "SUCCEEDED")
        assert len(attempts) == 2
        page.click("#exec-rows a:has-text('charge-1')")
        page.wait_for_selector("g[data-state=Charge][data-status=succeeded]", timeout=10_000)
        assert page.is_hidden("#exec-redrive")
        assert page.inner_text("#problem") == ""
        assert page.locator("#exec-history td:text-is('ExecutionRedriven')").count() == 1
        described = engine.describe(name="charge-1")
        assert described["redriveCount"] == 1
        page.close()


def test_console_shows_capture_sources_and_feed_counts(browser: Any, sqlite_url: str) -> None:
    from jetbridge.aodb import lease

    app = create_app(Settings(database_url=sqlite_url, run_workers=False))
    platform = app.state.platform
    with serve_app(app) as base:
        user(app, "operator", "operator password 1", roles=("admin",))
        with platform.engine.begin() as conn:
            held = lease.take(conn, source="ramp-db", holder="ops-host:4242", lease_seconds=600)
            assert held is not None
            held.save(conn, "position-17")
        operator = {"Authorization": bearer(app)["Authorization"]}
        refused = httpx.post(f"{base}/api/ingest/mvt", content=b"MVT\nLX318/2X.HB\nAD0738",
                             headers=operator)  # fmt: skip
        assert refused.status_code == 400
        page = browser.new_page()
        browser_sign_in(page, base, "operator", "operator password 1")
        page.goto(f"{base}/console")
        page.click("#tabs button[data-tab=ingest]")
        source = page.locator("#capture-rows tr[data-source=ramp-db]")
        source.wait_for(timeout=20_000)
        assert "ops-host:4242" in source.inner_text()
        assert "ago" in source.inner_text()
        feed = page.locator("#feed-rows tr[data-feed=mvt] td")
        feed.first.wait_for(timeout=20_000)
        cells = feed.all_inner_texts()
        assert cells[0] == "mvt"
        assert int(cells[3]) >= 1  # refused since this process started
        assert int(cells[5]) >= 1  # refusals logged in the last hour
        page.close()
