"""Health, readiness and the Prometheus exposition: a scripted workload, then a scrape whose
counters must equal what the workload did."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from jetbridge.app import create_app
from jetbridge.config import Settings
from support import handlers
from support.auth import as_operator, bearer
from support.webhook import webhook_receiver

TOKEN = "scrape-token-0123456789abcdef0123456789"


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    handlers.reset()
    settings = Settings(
        database_url=database_url,
        retry_base_seconds=0.01,
        retry_max_backoff_seconds=0.02,
        delivery_poll_seconds=0.02,
        outbound_allow="127.0.0.1",
        metrics_token=TOKEN,
    )
    with TestClient(create_app(settings, handlers=handlers.HANDLERS)) as test_client:
        as_operator(test_client)
        yield test_client


Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient) -> Scrape:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    found: Scrape = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(scraped: Scrape, name: str, **labels: str) -> float:
    """The sum over series of `name` whose labels include `labels`."""
    return sum(
        v
        for (sample, pairs), v in scraped.items()
        if sample == name and labels.items() <= dict(pairs).items()
    )


def grew(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_health_answers_anyone_and_readiness_names_what_is_wrong(tmp_path: Path) -> None:
    database = tmp_path / "ready.db"
    app = create_app(Settings(database_url=f"sqlite:///{database}"))
    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"status": "alive"}
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {
            "status": "ready",
            "checks": {"database": "ok", "workers": "ok"},
        }

        # The database file is replaced by something that is not a database.
        platform = app.state.platform
        platform.engine.dispose()
        for leftover in tmp_path.glob("ready.db*"):
            leftover.unlink()
        database.write_bytes(b"this is not an SQLite database file" * 200)
        platform.engine.dispose()
        broken = client.get("/readyz")
        assert broken.status_code == 503
        body = broken.json()
        assert body["status"] == "not ready"
        assert body["checks"]["database"].startswith("the database does not answer (")
        assert str(tmp_path) not in broken.text
        assert client.get("/healthz").status_code == 200


def test_readiness_reports_a_stopped_background_loop(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'loops.db'}"))
    with TestClient(app) as client:
        platform = app.state.platform
        platform.tasks[0].cancel()
        answer = wait_for(lambda: (r := client.get("/readyz")).status_code == 503 and r)
        assert answer.json()["checks"]["workers"] == "a background loop was cancelled"


def test_readiness_answers_shutting_down_once_a_shutdown_began(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'drain.db'}"))
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        platform = app.state.platform
        platform.begin_shutdown()
        draining = client.get("/readyz")
        assert draining.status_code == 503
        assert draining.json()["status"] == "shutting down"
        # Requests are still answered until the server closes.
        assert client.get("/healthz").status_code == 200
        # The background loops stop taking work and end.
        wait_for(lambda: all(task.done() for task in platform.tasks))


def test_metrics_are_for_platform_operations_or_the_scrape_token(client: TestClient) -> None:
    app = client.app
    anonymous = TestClient(app)
    assert anonymous.get("/metrics").status_code == 401
    wrong = anonymous.get("/metrics", headers={"Authorization": "Bearer " + "x" * 40})
    assert wrong.status_code == 401
    tenant_ops = bearer(app, roles=("operations",), tenant="LX")
    assert anonymous.get("/metrics", headers=tenant_ops).status_code == 403
    platform_ops = bearer(app, roles=("operations",), tenant=None)
    assert anonymous.get("/metrics", headers=platform_ops).status_code == 200
    assert anonymous.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).is_success


def test_settings_refuse_a_short_scrape_token() -> None:
    with pytest.raises(ValueError, match="JETBRIDGE_METRICS_TOKEN must be at least 32"):
        Settings(metrics_token="short")


def test_a_scrape_after_a_workload_counts_exactly_what_it_did(client: TestClient) -> None:
    before = scrape(client)
    with webhook_receiver() as hook:
        targets = [
            {"id": "py", "kind": "python", "handler": "record"},
            {"id": "web", "kind": "http", "url": hook.url},
        ]
        failing = {
            "id": "down",
            "kind": "python",
            "handler": "always-fails",
            "retry_policy": {"maximum_retry_attempts": 1, "maximum_event_age_seconds": 3600},
        }
        for name, rule_targets, kind in (("m-ok", targets, "ok"), ("m-bad", [failing], "bad")):
            response = client.put(
                f"/api/buses/default/rules/{name}",
                json={
                    "name": name,
                    "event_pattern": {"source": ["metrics.test"], "detail-type": [kind]},
                    "targets": rule_targets,
                },
            )
            assert response.status_code == 200, response.text
        entries = [
            {"Source": "metrics.test", "DetailType": kind, "Detail": "{}"}
            for kind in ("ok", "ok", "ok", "bad", "bad", "other")
        ]
        assert client.post("/api/buses/default/events", json={"entries": entries}).is_success
        wait_for(lambda: len(hook.requests) == 3 and len(handlers.RECEIVED["record"]) == 3)
        wait_for(lambda: len(client.get("/api/dlq").json()) == 2)

    for status, definition_resource in (("ok", "record"), ("bad", "always-fails")):
        started = client.post(
            "/api/workflows/executions",
            json={
                "name": f"metrics-{status}",
                "definition": {
                    "StartAt": "Prepare",
                    "States": {
                        "Prepare": {"Type": "Pass", "Next": "Work"},
                        "Work": {"Type": "Task", "Resource": definition_resource, "End": True},
                    },
                },
                "input": {},
            },
        )
        assert started.status_code == 201, started.text
    wait_for(
        lambda: (
            {e["status"] for e in client.get("/api/workflows/executions").json()}
            >= {"SUCCEEDED", "FAILED"}
        )
    )
    refused = client.post("/api/ingest/mvt", content=b"this is no telex")
    assert refused.status_code == 400, refused.text
    for _ in range(4):
        assert client.get("/healthz").status_code == 200
    assert client.get("/api/buses/no-such-bus").status_code == 404
    assert client.get("/no/such/page").status_code == 404

    after = scrape(client)
    assert grew(before, after, "jetbridge_events_put_total", bus="default") == 6
    for rule, target, count in (("m-ok", "py", 3), ("m-ok", "web", 3), ("m-bad", "down", 2)):
        assert (
            grew(
                before,
                after,
                "jetbridge_events_matched_total",
                bus="default",
                rule=rule,
                target=target,
            )
            == count
        )
    for target in ("py", "web"):
        assert (
            grew(before, after, "jetbridge_events_delivered_total", rule="m-ok", target=target) == 3
        )
    assert grew(before, after, "jetbridge_delivery_seconds_count", bus="default") == 6
    assert grew(before, after, "jetbridge_events_retried_total", rule="m-bad") == 2
    assert grew(before, after, "jetbridge_events_dead_lettered_total", rule="m-bad") == 2
    assert value(after, "jetbridge_dlq_depth", bus="default") == 2
    assert (
        grew(before, after, "jetbridge_workflow_executions_started_total", machine="machine") == 2
    )
    ended = "jetbridge_workflow_executions_ended_total"
    assert grew(before, after, ended, machine="machine", status="SUCCEEDED") == 1
    assert grew(before, after, ended, machine="machine", status="FAILED") == 1
    assert grew(before, after, "jetbridge_workflow_execution_seconds_count", machine="machine") == 2
    assert grew(before, after, "jetbridge_workflow_transitions_total", machine="machine") == 4
    # The python target "record" ran three times as a rule target, once as a Task.
    assert grew(before, after, "jetbridge_task_seconds_count", handler="record") == 1
    assert grew(before, after, "jetbridge_task_errors_total", handler="always-fails") == 1
    assert (
        grew(before, after, "jetbridge_ingest_messages_total", feed="mvt", outcome="refused") == 1
    )
    api = "jetbridge_api_requests_total"
    assert grew(before, after, api, route="/healthz", method="GET", status="200") == 4
    assert grew(before, after, api, route="/api/buses/{bus}", method="GET", status="404") == 1
    assert grew(before, after, api, route="unmatched", method="GET", status="404") == 1
    assert grew(before, after, api, route="/api/buses/{bus}/events", method="POST") == 1
    assert grew(before, after, "jetbridge_api_request_seconds_count", route="/healthz") == 4
    assert grew(before, after, "jetbridge_db_query_seconds_count") > 0
    assert ("jetbridge_db_connections_in_use", ()) in after
    assert value(after, "jetbridge_alarm_firing", alarm="dlq-depth") in {0.0, 1.0}
