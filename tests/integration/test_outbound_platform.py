"""The platform with no internal destination allowed: HTTP targets, subscription webhooks and
HTTP tasks are refused (at write time when the URL names the address, at delivery otherwise)
while the built-in payment provider keeps working, and the allow-list opens one receiver."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.config import Settings
from jetbridge.events import registry
from jetbridge.events.specs import RuleSpec
from jetbridge.flights.hub import FlightHub, get_flight
from jetbridge.flights.merge import Update
from jetbridge.flights.model import FlightIdentity
from jetbridge.notify import subscriptions
from jetbridge.notify.subscriptions import SubscriptionRequest
from jetbridge.payments.test_provider import APPROVE
from jetbridge.workflows import execute
from support.auth import as_operator, bearer
from support.servers import free_port, serve_app
from support.webhook import webhook_receiver

HINT = "; allow it with JETBRIDGE_OUTBOUND_ALLOW"
EVENT = {
    "specversion": "1.0",
    "id": "e-1",
    "source": "airport.ops",
    "type": "gate.changed",
    "data": {"gate": "A1"},
}
HTTP_TASK = {
    "StartAt": "Call",
    "States": {
        "Call": {
            "Type": "Task",
            "Resource": "arn:aws:states:::http:invoke",
            "Parameters": {"ApiEndpoint.$": "$.url", "Method": "POST", "RequestBody": {"a": 1}},
            "End": True,
        }
    },
}


def strict(database_url: str, **options: Any) -> Settings:
    """Settings with nothing internal allowed (the tests' environment allows loopback)."""
    return Settings(
        database_url=database_url,
        outbound_allow="",
        delivery_poll_seconds=0.02,
        retry_base_seconds=0.02,
        retry_max_backoff_seconds=0.1,
        **options,
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def http_rule(name: str, targets: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "event_pattern": {"source": ["airport.ops"]},
        "targets": [{"id": key, "kind": "http", "url": url} for key, url in targets.items()],
    }


def test_http_targets_at_internal_addresses_fail_once_with_the_reason(sqlite_url: str) -> None:
    with (
        webhook_receiver() as v4,
        webhook_receiver("::1") as v6,
        TestClient(create_app(strict(sqlite_url))) as client,
    ):
        as_operator(client)
        cases = {
            "loopback": (v4.url, "refused: 127.0.0.1 is a loopback address"),
            "private": ("http://10.0.0.5/hook", "refused: 10.0.0.5 is a private address"),
            "metadata": (
                "http://169.254.169.254/latest/meta-data/",
                "refused: 169.254.169.254 is a link-local address (the cloud metadata service)",
            ),
            "v6": (v6.url, "refused: ::1 is a loopback address"),
            "mapped": (
                f"http://[::ffff:127.0.0.1]:{v4.port}/hook",
                "embeds 127.0.0.1, a loopback address",
            ),
            "name": (
                f"http://localhost:{v4.port}/hook",
                "refused: localhost resolves to 127.0.0.1, which is a loopback address",
            ),
        }
        urls = {key: url for key, (url, _) in cases.items()}
        # Stored directly (as the CLI does): the API refuses these URLs when they are written.
        with client.app.state.platform.backbone.transaction() as conn:  # type: ignore[attr-defined]
            for name, keys in (("inside-a", list(urls)[:3]), ("inside-b", list(urls)[3:])):
                rule = http_rule(name, {key: urls[key] for key in keys})
                registry.put_rule(
                    conn,
                    bus="default",
                    spec=RuleSpec.model_validate(rule),
                    handlers=client.app.state.platform.backbone.handlers,  # type: ignore[attr-defined]
                )
        client.post("/api/buses/default/events", json={"entries": [EVENT]})
        letters = wait_for(lambda: len(found := client.get("/api/dlq").json()) == 6 and found)
        by_target = {letter["target_id"]: letter for letter in letters}
        for key, (url, reason) in cases.items():
            assert by_target[key]["attempts"] == 1, key
            error = by_target[key]["error"]
            assert error.startswith(f"POST {url}: "), error
            assert error.endswith(f"{reason}{HINT} (not retryable)"), error
        assert v4.requests == [] and v6.requests == []


def test_the_api_refuses_internal_target_and_webhook_urls_naming_the_field(
    sqlite_url: str,
) -> None:
    with TestClient(create_app(strict(sqlite_url, run_workers=False))) as client:
        as_operator(client)
        refused = {
            "http://10.0.0.5/hook": "refused: 10.0.0.5 is a private address",
            "http://169.254.169.254/latest/meta-data/": "refused: 169.254.169.254 is a link-local",
            "http://[::1]:9000/": "refused: ::1 is a loopback address",
            "http://[::ffff:127.0.0.1]/": "refused: ::ffff:7f00:1 embeds 127.0.0.1, a loopback",
            "http://localhost:9000/": "refused: localhost resolves to 127.0.0.1",
            "http://127.1/": "refused: 127.1 resolves to 127.0.0.1",
            # The built-in payment provider's origin is the platform's own, not a caller's.
            "http://127.0.0.1:8080/test-payments/v1/refunds": "refused: 127.0.0.1 is a loopback",
            "http://[zz]/": "not a valid URL",
            "http://hooks.example.com:99999/": "port 99999 is out of range",
        }
        for url, reason in refused.items():
            rule = http_rule("r", {"t": url})
            response = client.put("/api/buses/default/rules/r", json=rule)
            assert response.status_code == 400, (url, response.text)
            assert response.json()["message"].startswith(f"body.targets[0].url: {reason}"), url
            targets = [{"id": "ok", "kind": "python", "handler": "support.handlers:record"}]
            targets.append({"id": "t", "kind": "http", "url": url})
            response = client.put("/api/buses/default/rules/r/targets", json=targets)
            assert response.status_code == 400, (url, response.text)
            assert response.json()["message"].startswith(f"body[1].url: {reason}"), url
            body = {"flight_key": "LX0318-2026-11-24-ZRH-LHR", "channel": "webhook", "url": url}
            response = client.post("/api/subscriptions", json=body)
            assert response.status_code == 400, (url, response.text)
            assert response.json()["message"].startswith(f"body.url: {reason}"), url
        rules = client.get("/api/buses/default/rules").json()
        # only the platform's own rules: none of the refused ones was written
        assert [rule["name"] for rule in rules] == ["disruption-detect", "subscriptions-fan-out"]
        # A name is not resolved when written: where it leads is checked at every connection.
        rule = http_rule("r", {"t": "https://hooks.example.com/flights"})
        assert client.put("/api/buses/default/rules/r", json=rule).status_code == 200


def test_the_allow_list_lets_exactly_one_receiver_through(sqlite_url: str) -> None:
    with webhook_receiver() as allowed, webhook_receiver() as other:
        settings = strict(sqlite_url).model_copy(
            update={"outbound_allow": f"127.0.0.1:{allowed.port}"}
        )
        with TestClient(create_app(settings)) as client:
            as_operator(client)
            ok = client.put("/api/buses/default/rules/r", json=http_rule("r", {"a": allowed.url}))
            assert ok.status_code == 200, ok.text
            no = client.put("/api/buses/default/rules/s", json=http_rule("s", {"b": other.url}))
            assert no.status_code == 400
            client.post("/api/buses/default/events", json={"entries": [EVENT]})
            wait_for(lambda: allowed.requests)
            assert client.get("/api/dlq").json() == []
        assert other.requests == []


FLIGHT = FlightIdentity.create(
    airline="LX",
    flight_number="318",
    origin_date="2026-11-24",
    departure_airport="ZRH",
    arrival_airport="LHR",
)
T0 = datetime(2026, 11, 24, 6, tzinfo=UTC)


def test_subscription_webhooks_to_internal_addresses_are_refused_at_delivery(
    sqlite_url: str,
) -> None:
    with webhook_receiver() as receiver:
        app = create_app(strict(sqlite_url))
        with TestClient(app) as client:
            as_operator(client)
            backbone = app.state.platform.backbone
            hub = FlightHub(backbone)
            hub.apply_all([Update(FLIGHT, "aodb", T0, {"gate": "A1"})])
            urls = [receiver.url, f"http://localhost:{receiver.port}/hook"]
            with backbone.transaction() as conn:
                version = get_flight(conn, FLIGHT.key)["version"]  # type: ignore[index]
                for url in urls:  # stored directly: the API refuses these URLs when written
                    request = SubscriptionRequest(flight_key=FLIGHT.key, channel="webhook", url=url)
                    subscriptions.subscribe(conn, request=request, current_version=version)
            hub.apply_all([Update(FLIGHT, "aodb", T0 + timedelta(minutes=1), {"gate": "A7"})])
            letters = wait_for(lambda: len(found := client.get("/api/dlq").json()) == 2 and found)
        for letter in letters:
            assert letter["bus"] == "notifications"
            assert letter["attempts"] == 1
            # The reason names the address, never the subscriber's host name.
            expected = f"webhook: refused: 127.0.0.1 is a loopback address{HINT} (not retryable)"
            assert letter["error"] == expected
        assert receiver.requests == []


def test_http_tasks_reach_only_what_the_allow_list_admits(sqlite_url: str) -> None:
    with webhook_receiver() as receiver:
        platform = create_app(strict(sqlite_url, run_workers=False)).state.platform
        platform.prepare()
        workflows = platform.workflows
        workflows.start(name="call", definition=HTTP_TASK, input={"url": receiver.url})
        assert workflows.run_one()
        failed = workflows.describe(name="call")
        assert (failed["status"], failed["error"]) == ("FAILED", "States.Http.Refused")
        assert f"refused: 127.0.0.1 is a loopback address{HINT}" in failed["cause"]
        # Run in-process without a handler for it, the HTTP task allows nothing internal.
        alone = execute(HTTP_TASK, {"url": receiver.url})
        assert (alone.status, alone.error) == ("FAILED", "States.Http.Refused")
        assert receiver.requests == []
        settings = strict(sqlite_url, run_workers=False).model_copy(
            update={"outbound_allow": f"127.0.0.1:{receiver.port}"}
        )
        allowed = create_app(settings).state.platform.workflows
        allowed.start(name="call-2", definition=HTTP_TASK, input={"url": receiver.url})
        assert allowed.run_one()
        assert allowed.describe(name="call-2")["status"] == "SUCCEEDED"
        assert len(receiver.requests) == 1


def test_the_built_in_payment_provider_works_with_nothing_internal_allowed(
    sqlite_url: str,
) -> None:
    day = (datetime.now(UTC) + timedelta(days=20)).date()
    port = free_port()
    app = create_app(strict(sqlite_url, host="127.0.0.1", port=port))
    with serve_app(app, port) as base, httpx.Client(base_url=base, timeout=10) as client:
        client.headers.update(bearer(app))
        with app.state.platform.backbone.transaction() as conn:
            import_schedule(conn, demo_schedule(start=day, days=1))
        body = {
            "flight_id": f"LX0100-{day.isoformat()}", "cabin": "economy", "customer_id": "c-1",
            "passengers": [{"given_name": "Ada", "family_name": "Lovelace"}],
            "payment": {"card": APPROVE},
        }  # fmt: skip
        created = client.post(
            "/api/bookings", json=body, headers={"Idempotency-Key": "outbound-0001"}
        )
        assert created.status_code in {200, 202}, created.text
        booking_id = created.json()["booking_id"]
        settled = {"confirmed", "failed", "cancelled"}

        def booking() -> dict[str, Any]:
            return dict(client.get(f"/api/bookings/{booking_id}").json())

        state = wait_for(lambda: (found := booking())["status"] in settled and found, 30)
        assert state["status"] == "confirmed", state
