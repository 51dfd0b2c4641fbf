"""The backbone end to end through its HTTP API, on SQLite and PostgreSQL, with workers running."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.events.signing import verify
from support import handlers
from support.auth import as_operator
from support.webhook import webhook_receiver


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
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
        retry_base_seconds=0.02,
        retry_max_backoff_seconds=0.1,
        delivery_poll_seconds=0.02,
        signing_secret="s3cret",
    )
    with TestClient(create_app(settings, handlers=handlers.HANDLERS)) as test_client:
        as_operator(test_client)
        yield test_client


def put_rule(client: TestClient, name: str, body: dict[str, Any], bus: str = "default") -> None:
    response = client.put(f"/api/buses/{bus}/rules/{name}", json={"name": name, **body})
    assert response.status_code == 200, response.text


def publish(client: TestClient, *entries: dict[str, Any], bus: str = "default") -> dict[str, Any]:
    response = client.post(f"/api/buses/{bus}/events", json={"entries": list(entries)})
    assert response.status_code == 200, response.text
    return dict(response.json())


def flight_event(n: int, **detail: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"evt-{n}",
        "source": "airport.gates",
        "type": "flight.gate_changed",
        "subject": "BA0123-2026-11-24",
        "partitionkey": "BA0123-2026-11-24",
        "data": {"flight": "BA0123", "gate": "A12", "n": n, **detail},
    }


PYTHON_TARGET = {"id": "rec", "kind": "python", "handler": "record"}


def test_matching_events_reach_a_python_handler_in_eventbridge_shape(client: TestClient) -> None:
    put_rule(
        client,
        "gates",
        {"event_pattern": {"detail-type": ["flight.gate_changed"]}, "targets": [PYTHON_TARGET]},
    )
    result = publish(client, flight_event(1), {**flight_event(2), "type": "flight.delayed"})
    assert [e["deliveries"] for e in result["entries"]] == [1, 0]
    (event,) = wait_for(lambda: handlers.RECEIVED["record"])
    assert event["detail-type"] == "flight.gate_changed"
    assert event["source"] == "airport.gates"
    assert event["detail"]["gate"] == "A12"
    assert event["resources"] == ["BA0123-2026-11-24"]
    assert set(event) >= {"version", "id", "account", "time", "region"}


def test_http_target_gets_signed_post_with_headers_and_api_key(client: TestClient) -> None:
    with webhook_receiver() as receiver:
        target = {
            "id": "hook",
            "kind": "http",
            "url": receiver.url,
            "headers": {"X-Partner": "airport"},
            "api_key_header": "X-Api-Key",
            "api_key": "k-123",
        }
        put_rule(
            client,
            "hook",
            {"event_pattern": {"source": ["airport.gates"]}, "targets": [target]},
        )
        publish(client, flight_event(1))
        headers, body = wait_for(lambda: receiver.requests)[0]
    verify("s3cret", headers["x-jetbridge-signature"], body)
    assert headers["x-partner"] == "airport"
    assert headers["x-api-key"] == "k-123"
    assert json.loads(body)["detail"]["n"] == 1
    shown = client.get("/api/buses/default/rules/hook").json()
    assert shown["targets"][0]["api_key"] == "****"


def test_transient_failures_are_retried_then_delivered(client: TestClient) -> None:
    target = {"id": "flaky", "kind": "python", "handler": "flaky"}
    put_rule(client, "flaky", {"event_pattern": {"source": ["airport.gates"]}, "targets": [target]})
    publish(client, flight_event(1))
    ((attempt, payload),) = wait_for(lambda: handlers.RECEIVED["flaky"])
    assert attempt == 3
    assert payload["detail"]["n"] == 1


def test_exhausted_retries_go_to_the_dead_letter_queue_and_can_be_redriven(
    client: TestClient,
) -> None:
    target = {
        "id": "down",
        "kind": "python",
        "handler": "always-fails",
        "retry_policy": {"maximum_retry_attempts": 2, "maximum_event_age_seconds": 3600},
    }
    put_rule(client, "down", {"event_pattern": {"source": ["airport.gates"]}, "targets": [target]})
    publish(client, flight_event(7))
    (letter,) = wait_for(lambda: client.get("/api/dlq").json())
    assert letter["attempts"] == 3
    assert "downstream system is unavailable" in letter["error"]
    assert letter["event"]["id"] == "evt-7"
    fixed = {**target, "handler": "record"}
    assert client.put("/api/buses/default/rules/down/targets", json=[fixed]).status_code == 200
    assert client.post("/api/dlq/redrive", json={"ids": [letter["id"]]}).json() == {"redriven": 1}
    (event,) = wait_for(lambda: handlers.RECEIVED["record"])
    assert event["id"] == "evt-7"
    assert client.get("/api/dlq").json() == []


def test_http_client_errors_are_not_retried(client: TestClient) -> None:
    with webhook_receiver() as receiver:
        receiver.statuses = [400]
        target = {"id": "hook", "kind": "http", "url": receiver.url}
        put_rule(
            client,
            "hook",
            {"event_pattern": {"source": ["airport.gates"]}, "targets": [target]},
        )
        publish(client, flight_event(1))
        (letter,) = wait_for(lambda: client.get("/api/dlq").json())
        assert len(receiver.requests) == 1
    assert letter["attempts"] == 1
    assert "HTTP 400" in letter["error"]


def test_same_partition_key_reaches_the_target_in_publish_order(client: TestClient) -> None:
    target = {"id": "ordered", "kind": "python", "handler": "slow-first-in-lane"}
    put_rule(
        client, "ordered", {"event_pattern": {"source": ["airport.gates"]}, "targets": [target]}
    )
    publish(client, flight_event(1, slow=True), *(flight_event(n) for n in range(2, 12)))
    received = wait_for(
        lambda: len(handlers.RECEIVED["ordered"]) == 11 and handlers.RECEIVED["ordered"]
    )
    assert received == list(range(1, 12))


def test_input_transformer_shapes_what_the_target_receives(client: TestClient) -> None:
    target = {
        **PYTHON_TARGET,
        "input_transformer": {
            "input_paths_map": {"flight": "$.detail.flight", "gate": "$.detail.gate"},
            "input_template": '{"text": "Flight <flight> now at gate <gate>", "gate": <gate>}',
        },
    }
    put_rule(
        client, "shaped", {"event_pattern": {"source": ["airport.gates"]}, "targets": [target]}
    )
    publish(client, flight_event(1))
    (payload,) = wait_for(lambda: handlers.RECEIVED["record"])
    assert payload == {"text": "Flight BA0123 now at gate A12", "gate": "A12"}


def test_input_path_selects_part_of_the_event(client: TestClient) -> None:
    target = {**PYTHON_TARGET, "input_path": "$.detail"}
    put_rule(
        client, "detail", {"event_pattern": {"source": ["airport.gates"]}, "targets": [target]}
    )
    publish(client, flight_event(3))
    (payload,) = wait_for(lambda: handlers.RECEIVED["record"])
    assert payload["n"] == 3


def test_bus_target_forwards_to_another_bus(client: TestClient) -> None:
    assert client.post("/api/buses", json={"name": "partners"}).status_code == 201
    put_rule(
        client,
        "partner-in",
        {"event_pattern": {"source": ["airport.gates"]}, "targets": [PYTHON_TARGET]},
        bus="partners",
    )
    forward = {"id": "fwd", "kind": "bus", "bus": "partners"}
    put_rule(
        client,
        "forward",
        {"event_pattern": {"source": ["airport.gates"]}, "targets": [forward]},
    )
    publish(client, flight_event(5))
    (event,) = wait_for(lambda: handlers.RECEIVED["record"])
    assert event["id"] == "evt-5"


def test_disabled_rule_receives_nothing(client: TestClient) -> None:
    put_rule(
        client,
        "off",
        {"event_pattern": {"source": ["airport.gates"]}, "targets": [PYTHON_TARGET]},
    )
    assert client.post("/api/buses/default/rules/off/disable").json()["state"] == "DISABLED"
    result = publish(client, flight_event(1))
    assert result["entries"][0]["deliveries"] == 0


def test_archive_and_replay_marks_replayed_events(client: TestClient) -> None:
    archive = {
        "name": "flights",
        "bus": "default",
        "event_pattern": {"source": ["airport.gates"]},
    }
    assert client.post("/api/archives", json=archive).status_code == 201
    begin = datetime.now(UTC) - timedelta(seconds=5)
    publish(client, flight_event(1), flight_event(2), {**flight_event(3), "source": "other"})
    assert client.get("/api/archives/flights").json()["event_count"] == 2
    put_rule(
        client,
        "replayed",
        {"event_pattern": {"replay-name": ["again"]}, "targets": [PYTHON_TARGET]},
    )
    replay = {
        "name": "again",
        "archive": "flights",
        "destination_bus": "default",
        "start_time": begin.isoformat(),
        "end_time": (datetime.now(UTC) + timedelta(seconds=1)).isoformat(),
    }
    response = client.post("/api/replays", json=replay)
    assert response.status_code == 201, response.text
    wait_for(lambda: client.get("/api/replays/again").json()["state"] == "COMPLETED")
    received = wait_for(
        lambda: len(handlers.RECEIVED["record"]) == 2 and handlers.RECEIVED["record"]
    )
    assert {e["id"] for e in received} == {"evt-1", "evt-2"}
    assert all(e["replay-name"] == "again" for e in received)
    assert client.get("/api/archives/flights").json()["event_count"] == 2


def test_duplicate_event_ids_are_published_once(client: TestClient) -> None:
    put_rule(
        client,
        "gates",
        {"event_pattern": {"source": ["airport.gates"]}, "targets": [PYTHON_TARGET]},
    )
    publish(client, flight_event(1))
    again = publish(client, flight_event(1))
    assert again["entries"][0]["duplicate"] is True
    wait_for(lambda: handlers.RECEIVED["record"])
    time.sleep(0.2)
    assert len(handlers.RECEIVED["record"]) == 1
