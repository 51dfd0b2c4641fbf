"""One trace per journey: a gate change from the AODB commit to the webhook, and a booking from
the request to the ticket, collected in memory; no personal data in any span."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import select, update

from jetbridge.aodb.cdc import DEFAULT_MAPPING, SqlChangeCapture, TableMapping
from jetbridge.aodb.legacy import movements
from jetbridge.aodb.simulator import AodbSimulator, plan_day
from jetbridge.app import create_app
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.config import Settings
from jetbridge.flights.cdc_runner import CdcRunner
from jetbridge.flights.hub import FlightHub
from jetbridge.ops import tracing
from jetbridge.ops.logs import CORRELATION, JsonFormatter, correlation_from
from jetbridge.payments.test_provider import APPROVE, Ledger, create_test_provider
from jetbridge.storage.db import create_database_engine
from support import handlers
from support.auth import as_operator
from support.servers import serve_app
from support.webhook import webhook_receiver


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    collected = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(collected))
    yield collected
    collected.clear()
    collected.shutdown()


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def of_trace(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]


def ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[str]:
    """The names from `span`'s parent up to the root of its trace."""
    by_id = {s.context.span_id: s for s in spans}
    names = []
    parent = span.parent
    while parent is not None:
        found = by_id.get(parent.span_id)
        if found is None:
            names.append("<missing>")
            break
        names.append(found.name)
        parent = found.parent
    return names


def no_personal_data(spans: list[ReadableSpan], *secrets: str) -> None:
    for span in spans:
        shown = json.dumps({"name": span.name, **dict(span.attributes or {})}, default=str)
        shown += json.dumps([dict(e.attributes or {}) for e in span.events], default=str)
        for secret in secrets:
            assert secret not in shown, f"{secret!r} in span {span.name}"


def test_one_gate_change_is_one_trace_from_the_aodb_commit_to_the_webhook(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    with webhook_receiver() as hook:
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'hub.db'}",
            delivery_poll_seconds=0.05,
            outbound_allow="127.0.0.1",
        )
        app = create_app(settings)
        with TestClient(app) as client:
            as_operator(client)
            rule = {
                "name": "gate-to-partner",
                "event_pattern": {
                    "source": ["jetbridge.flights"],
                    "detail-type": ["flight.gate_changed"],
                },
                "targets": [{"id": "partner", "kind": "http", "url": hook.url}],
            }
            assert client.put("/api/buses/default/rules/gate-to-partner", json=rule).is_success
            legacy = create_database_engine(f"sqlite:///{tmp_path / 'aodb.db'}")
            simulator = AodbSimulator(legacy, plan_day(seed=4, day=date.today(), rotations=1))
            simulator.install()
            early = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)
            with legacy.begin() as conn:
                conn.execute(update(movements).values(LAST_UPD=early))
            runner = CdcRunner(
                SqlChangeCapture(legacy, TableMapping.load(DEFAULT_MAPPING)),
                FlightHub(app.state.platform.backbone),
            )
            assert runner.step() > 0
            hook.requests.clear()

            # The AODB commits a gate change; the capture reads it once it is settled.
            with legacy.begin() as conn:
                key, version = conn.execute(
                    select(movements.c.MVT_ID, movements.c.ROW_VER).limit(1)
                ).one()
                conn.execute(
                    update(movements)
                    .where(key == movements.c.MVT_ID)
                    .values(
                        GATE="Z99",
                        ROW_VER=version + 1,
                        LAST_UPD=datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=5),
                    )
                )
            wait_for(lambda: runner.step() > 0)
            headers, body = wait_for(lambda: hook.requests and hook.requests[0])
            legacy.dispose()

    assert json.loads(body)["detail-type"] == "flight.gate_changed"
    _, trace_hex, parent_hex, _ = headers["traceparent"].split("-")
    spans = wait_for(lambda: of_trace(exporter, int(trace_hex, 16)))
    (root,) = [s for s in spans if s.parent is None]
    assert root.name == "capture watermark:aodb"
    (delivery,) = [s for s in spans if s.name == "deliver gate-to-partner/partner"]
    assert f"{delivery.context.span_id:016x}" == parent_hex
    assert ancestors(delivery, spans) == ["publish default", "capture watermark:aodb"]
    assert delivery.attributes is not None
    assert delivery.attributes["jetbridge.target.kind"] == "http"


def test_one_booking_is_one_trace_from_the_request_to_the_ticket(
    tmp_path: Path, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    day = (datetime.now(UTC) + timedelta(days=20)).date()
    ledger = Ledger(timeout_seconds=2)
    with serve_app(create_test_provider(ledger)) as provider_url:
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'booking.db'}",
            payments_url=provider_url,
            delivery_poll_seconds=0.05,
        )
        app = create_app(settings)
        with TestClient(app) as client:
            as_operator(client)
            with app.state.platform.backbone.transaction() as conn:
                import_schedule(conn, demo_schedule(start=day, days=1))
            body = {
                "flight_id": f"LX0100-{day.isoformat()}",
                "cabin": "economy",
                "customer_id": "cust-trace",
                "passengers": [{"given_name": "Augusta", "family_name": "Byron-King"}],
                "payment": {"card": APPROVE},
            }
            created = client.post(
                "/api/bookings", json=body, headers={"Idempotency-Key": "trace-booking-1"}
            ).json()
            booking_id = created["booking_id"]
            wait_for(
                lambda: (
                    client.get(f"/api/workflows/executions/booking-{booking_id}").json()["status"]
                    == "SUCCEEDED"
                )
            )

    (request,) = [s for s in exporter.get_finished_spans() if s.name == "POST /api/bookings"]
    assert request.parent is None
    spans = of_trace(exporter, request.context.trace_id)
    names = [s.name for s in spans]
    assert "workflow booking" in names
    tasks = [s for s in spans if s.name.startswith("task ")]
    assert len(tasks) >= 3, names
    for task in tasks:
        chain = ancestors(task, spans)
        assert chain[-1] == "POST /api/bookings", chain
        assert "workflow booking" in chain
    published = [s for s in spans if s.name.startswith("publish ")]
    assert any("task " in " ".join(ancestors(s, spans)) for s in published), names
    no_personal_data(exporter.get_finished_spans(), "Augusta", "Byron-King", APPROVE)
    formatter = JsonFormatter()
    for record in caplog.records:
        line = formatter.format(record)
        for secret in ("Augusta", "Byron-King", APPROVE):
            assert secret not in line, line


def test_json_logs_carry_the_trace_and_correlation_ids(exporter: InMemorySpanExporter) -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord(
        "jetbridge.test", logging.WARNING, __file__, 1, "hello %s", ("x",), None
    )
    token = CORRELATION.set(correlation_from("req-42"))
    try:
        with tracing.span("unit of work") as current:
            line = json.loads(formatter.format(record))
    finally:
        CORRELATION.reset(token)
    assert line["message"] == "hello x"
    assert line["level"] == "warning"
    assert line["trace_id"] == f"{current.get_span_context().trace_id:032x}"
    assert line["correlation_id"] == "req-42"
    assert correlation_from("not an id\nforged: line") is None


def test_a_callback_that_sends_the_traceparent_back_joins_the_execution_trace(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    handlers.reset()
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'callback.db'}")
    app = create_app(settings, handlers=handlers.HANDLERS)
    with TestClient(app) as client:
        as_operator(client)
        started = client.post(
            "/api/workflows/executions",
            json={
                "name": "traced-callback",
                "definition": {
                    "StartAt": "Ask",
                    "States": {
                        "Ask": {
                            "Type": "Task",
                            "Resource": "record.waitForTaskToken",
                            "Parameters": {"token.$": "$$.Task.Token"},
                            "End": True,
                        }
                    },
                },
                "input": {},
            },
        )
        assert started.status_code == 201, started.text
        (asked,) = wait_for(lambda: handlers.RECEIVED["record"])
        task = wait_for(
            lambda: [s for s in exporter.get_finished_spans() if s.name == "task record"]
        )[-1]
        traceparent = f"00-{task.context.trace_id:032x}-{task.context.span_id:016x}-01"
        answered = client.post(
            "/api/workflows/tasks/success",
            json={"task_token": asked["token"], "output": {"ok": True}},
            headers={"traceparent": traceparent},
        )
        assert answered.is_success, answered.text
        wait_for(
            lambda: (
                client.get("/api/workflows/executions/traced-callback").json()["status"]
                == "SUCCEEDED"
            )
        )

    spans = of_trace(exporter, task.context.trace_id)
    names = [s.name for s in spans]
    assert names.count("workflow machine") >= 2, names  # the run that asked, the one after
    (callback,) = [s for s in spans if s.name == "POST /api/workflows/tasks/success"]
    assert ancestors(callback, spans)[-1] == "POST /api/workflows/executions"
