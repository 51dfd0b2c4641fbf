"""Each built-in alarm, with its default threshold, is tripped by real work, and its state change
arrives as an event on a webhook through an ordinary rule on the `operations` bus."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text, update

from jetbridge.aodb.cdc import DEFAULT_MAPPING, SqlChangeCapture, TableMapping
from jetbridge.aodb.legacy import movements
from jetbridge.aodb.simulator import AodbSimulator, plan_day
from jetbridge.api.policy import Public
from jetbridge.app import create_app
from jetbridge.booking.money import Money
from jetbridge.config import Settings
from jetbridge.flights.cdc_runner import CdcRunner
from jetbridge.flights.hub import FlightHub
from jetbridge.ops.alarms import DEFAULT_ALARMS, Window, histogram_quantile
from jetbridge.storage.db import create_database_engine
from support import handlers
from support.auth import as_operator
from support.webhook import Receiver, webhook_receiver

PAYMENT_DELAY = 5.3


@contextmanager
def slow_payment_provider() -> Iterator[str]:
    """A PaymentIntents-style provider that answers after more than five seconds."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            time.sleep(PAYMENT_DELAY)
            body = json.dumps(
                {"id": "pi_slow", "status": "requires_capture", "amount": 1000, "currency": "eur"}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def received(hook: Receiver) -> list[dict[str, Any]]:
    """The alarm state-change events the webhook received, in order."""
    with hook.lock:
        bodies = [json.loads(body) for _, body in hook.requests]
    return [body for body in bodies if body.get("source") == "jetbridge.alarms"]


def alarm_events(hook: Receiver) -> dict[str, dict[str, Any]]:
    """The first event per alarm that put it in ALARM."""
    found: dict[str, dict[str, Any]] = {}
    for body in received(hook):
        if body["detail"]["state"]["value"] == "ALARM":
            found.setdefault(body["detail"]["alarmName"], body)
    return found


def firing(hook: Receiver) -> set[str]:
    """Alarms that went into ALARM (the database's may be back to OK once its load ends)."""
    return set(alarm_events(hook))


def latest_state(hook: Receiver, alarm: str) -> str:
    details = [body["detail"] for body in received(hook)]
    return str([d["state"]["value"] for d in details if d["alarmName"] == alarm][-1])


def wait_for(predicate: Callable[[], Any], timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def add_failing_route(app: FastAPI) -> None:
    """A route whose handler has a bug: the API answers 500."""

    @app.get("/api/test-broken")
    def broken(_: Public) -> None:
        raise RuntimeError("a bug")


def put_rule(client: TestClient, bus: str, name: str, body: dict[str, Any]) -> None:
    response = client.put(f"/api/buses/{bus}/rules/{name}", json={"name": name, **body})
    assert response.status_code == 200, response.text


def slow_statements(engine: Any, stop: threading.Event) -> None:
    """Statements that take 0.6 s each, as a database under strain would, until `stop`."""
    with engine.connect() as conn:
        conn.connection.driver_connection.create_function("pause", 1, time.sleep)
        reader = conn.execution_options(readonly=True)  # holds no write lock while it waits
        while not stop.is_set():
            reader.execute(text("SELECT pause(0.6)"))
            reader.rollback()


def test_each_default_alarm_trips_and_its_event_reaches_a_webhook(tmp_path: Path) -> None:
    handlers.reset()
    with webhook_receiver() as hook, slow_payment_provider() as payments_url:
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'alarms.db'}",
            alarm_interval_seconds=0.2,
            delivery_poll_seconds=0.05,
            outbound_allow="127.0.0.1",
            payments_url=payments_url,
        )
        app = create_app(settings, handlers=handlers.HANDLERS)
        add_failing_route(app)
        with TestClient(app, raise_server_exceptions=False) as client:
            as_operator(client)
            platform = app.state.platform
            put_rule(
                client,
                "operations",
                "alarms-to-pager",
                {
                    "event_pattern": {"source": ["jetbridge.alarms"]},
                    "targets": [{"id": "pager", "kind": "http", "url": hook.url}],
                },
            )
            states = client.get("/api/alarms").json()
            assert {a["name"] for a in states} == {a.name for a in DEFAULT_ALARMS}
            assert {a["state"] for a in states} == {"OK"}

            # A dead letter: a target that fails with no retries left.
            put_rule(
                client,
                "default",
                "to-broken-system",
                {
                    "event_pattern": {"source": ["alarm.test"]},
                    "targets": [
                        {
                            "id": "down",
                            "kind": "python",
                            "handler": "always-fails",
                            "retry_policy": {
                                "maximum_retry_attempts": 0,
                                "maximum_event_age_seconds": 3600,
                            },
                        }
                    ],
                },
            )
            entry = {"Source": "alarm.test", "DetailType": "x", "Detail": "{}"}
            assert client.post("/api/buses/default/events", json={"entries": [entry]}).is_success

            # A workflow whose Task handler raises: task errors and a failed execution.
            started = client.post(
                "/api/workflows/executions",
                json={
                    "name": "alarm-failing-task",
                    "definition": {
                        "StartAt": "Work",
                        "States": {
                            "Work": {"Type": "Task", "Resource": "always-fails", "End": True}
                        },
                    },
                    "input": {},
                },
            )
            assert started.status_code == 201, started.text

            # An API answer with status 500.
            assert client.get("/api/test-broken").status_code == 500

            # A payment provider call that takes more than five seconds.
            assert platform.bookings is not None
            paid = threading.Thread(
                target=platform.bookings.tasks.payments.authorize,
                kwargs={
                    "key": "alarm-test",
                    "amount": Money(1000, "EUR"),
                    "card": "4242424242424242",
                    "description": "alarm test",
                },
            )
            paid.start()

            # An AODB change captured two minutes after it was committed.
            legacy = create_database_engine(f"sqlite:///{tmp_path / 'aodb.db'}")
            simulator = AodbSimulator(legacy, plan_day(seed=1, day=date.today(), rotations=2))
            simulator.install()
            late = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=2)
            with legacy.begin() as conn:
                conn.execute(update(movements).values(LAST_UPD=late))
            capture = SqlChangeCapture(legacy, TableMapping.load(DEFAULT_MAPPING))
            assert CdcRunner(capture, FlightHub(platform.backbone)).step() > 0

            # Database statements slower than half a second, until their alarm is seen.
            stop = threading.Event()
            slow = [
                threading.Thread(target=slow_statements, args=(platform.engine, stop))
                for _ in range(6)
            ]
            for thread in slow:
                thread.start()
            try:
                wait_for(lambda: "database-latency-p99" in firing(hook))
            finally:
                stop.set()
                for thread in slow:
                    thread.join()
            paid.join()
            legacy.dispose()

            expected = {alarm.name for alarm in DEFAULT_ALARMS}
            wait_for(lambda: firing(hook) >= expected)
            events = alarm_events(hook)
            dlq = events["dlq-depth"]
            assert dlq["detail-type"] == "alarm.state_changed"
            assert dlq["detail"]["previousState"]["value"] == "OK"
            assert dlq["detail"]["configuration"] == {"threshold": 0.0, "unit": "letters"}
            assert dlq["detail"]["value"] == 1
            assert events["payment-latency"]["detail"]["value"] > 5.0
            assert events["capture-lag"]["detail"]["value"] > 30.0
            listed = {a["name"]: a for a in client.get("/api/alarms").json()}
            assert listed["dlq-depth"]["state"] == "ALARM"
            assert "above the threshold" in listed["dlq-depth"]["reason"]

            # Redriving nothing but discarding the dead letter ends its alarm: back to OK.
            letter = client.get("/api/dlq").json()[0]
            assert client.delete(f"/api/dlq/{letter['id']}").is_success
            wait_for(lambda: latest_state(hook, "dlq-depth") == "OK")
            series = client.get("/api/metrics/series", params={"name": "dlq_depth"}).json()
            assert series["unit"] == "letters"
            assert max(value for _, value in series["points"]) == 1


def test_quantiles_follow_prometheus_interpolation() -> None:
    buckets = [(0.1, 0.0), (0.5, 99.0), (1.0, 100.0), (float("inf"), 100.0)]
    assert histogram_quantile(0.99, buckets) == 0.5
    assert histogram_quantile(0.995, buckets) == 0.75
    assert histogram_quantile(0.5, [(float("inf"), 0.0)]) is None
    # A counter that went down belongs to a restarted process: it counts from zero.
    window = Window(
        now={("jetbridge_task_errors_total", ()): 2.0},
        before={("jetbridge_task_errors_total", ()): 5.0},
    )
    assert window.delta("jetbridge_task_errors_total") == 2.0


def test_the_series_endpoint_names_what_exists(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'series.db'}", run_workers=False)
    client = TestClient(create_app(settings))
    with client:
        as_operator(client)
        names = [s["name"] for s in client.get("/api/metrics/series").json()["series"]]
        assert "api_requests_per_second" in names
        answer = client.get("/api/metrics/series", params={"name": "nope"})
        assert answer.status_code == 400
        assert "no series 'nope'" in answer.json()["message"]
