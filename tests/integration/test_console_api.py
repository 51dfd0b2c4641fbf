"""What the operations console adds to the APIs: trying a pattern on a bus's recent events,
editing a rule's pattern alone, redriving an edited dead letter to its own target, an
execution's state machine as a graph with progress, and a live tail filtered by a pattern."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.workflows.graph import execution_graph
from support import handlers
from support.auth import as_operator, bearer, ensure_tenant
from support.servers import serve_app


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
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
    )
    with TestClient(create_app(settings, handlers=handlers.HANDLERS)) as test_client:
        as_operator(test_client)
        yield test_client


def gate_event(n: int, gate: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"gate-{n}",
        "source": "airport.gates",
        "type": "flight.gate_changed",
        "subject": f"LX{n}",
        "data": {"gate": gate, "n": n},
    }


def publish(client: TestClient, *entries: dict[str, Any]) -> None:
    response = client.post("/api/buses/default/events", json={"entries": list(entries)})
    assert response.status_code == 200, response.text


def test_a_pattern_is_tried_on_recent_events_as_rules_see_them(client: TestClient) -> None:
    publish(client, *(gate_event(n, "A1" if n % 3 == 0 else "B2") for n in range(9)))
    trial = client.post(
        "/api/console/buses/default/pattern-trial",
        json={
            "event_pattern": {"detail-type": ["flight.gate_changed"], "detail": {"gate": ["A1"]}}
        },
    )
    assert trial.status_code == 200, trial.text
    body = trial.json()
    assert body["checked"] == 9 and body["matched"] == 3
    assert [m["event"]["detail"]["n"] for m in body["matches"]] == [0, 3, 6]
    assert body["matches"][0]["event"]["source"] == "airport.gates"  # the EventBridge shape
    # only the most recent `limit` events are tried
    recent = client.post(
        "/api/console/buses/default/pattern-trial",
        json={"event_pattern": '{"detail": {"gate": ["A1"]}}', "limit": 2},
    ).json()
    assert recent["checked"] == 2 and recent["matched"] == 0
    bad = client.post(
        "/api/console/buses/default/pattern-trial",
        json={"event_pattern": {"detail": {"gate": [{"prefix": 5}]}}},
    )
    assert bad.status_code == 400
    assert "event_pattern" in bad.json()["message"] and "prefix" in bad.json()["message"]
    for hostile in ({"limit": 0}, {"limit": 100000}, {"event_pattern": "x" * 5000}, {}):
        body = {"event_pattern": {"source": ["a"]}, **hostile}
        if hostile == {}:
            body = {}
        answer = client.post("/api/console/buses/default/pattern-trial", json=body)
        assert answer.status_code == 422, (hostile, answer.text)
    assert (
        client.post(
            "/api/console/buses/nowhere/pattern-trial", json={"event_pattern": {"source": ["a"]}}
        ).status_code
        == 404
    )


def test_another_tenants_bus_cannot_be_tried_or_tailed(client: TestClient) -> None:
    app = client.app
    ensure_tenant(app, "LX")
    publish(client, gate_event(1, "A1"))
    lx = bearer(app, roles=("operations",), tenant="LX")
    answer = client.post(
        "/api/console/buses/default/pattern-trial",
        json={"event_pattern": {"source": ["airport.gates"]}},
        headers=lx,
    )
    assert answer.status_code == 404


def test_a_rules_pattern_is_edited_alone_and_its_targets_stay(client: TestClient) -> None:
    target = {"id": "hook", "kind": "http", "url": "https://hooks.example.com/x", "secret": "s3"}
    put = client.put(
        "/api/buses/default/rules/gates",
        json={"name": "gates", "event_pattern": {"source": ["airport.gates"]}, "targets": [target]},
    )
    assert put.status_code == 200, put.text
    edited = client.put(
        "/api/console/buses/default/rules/gates/pattern",
        json={"event_pattern": {"source": ["airport.gates"], "detail": {"gate": ["A1"]}}},
    )
    assert edited.status_code == 200, edited.text
    rule = client.get("/api/buses/default/rules/gates").json()
    assert rule["event_pattern"]["detail"] == {"gate": ["A1"]}
    assert rule["targets"][0]["url"] == "https://hooks.example.com/x"
    assert rule["targets"][0]["secret"] == "****"  # still set, still write-only
    invalid = client.put(
        "/api/console/buses/default/rules/gates/pattern",
        json={"event_pattern": {"detail": {"gate": [{"numeric": [">", "x"]}]}}},
    )
    assert invalid.status_code == 400 and "event_pattern" in invalid.json()["message"]
    unchanged = client.get("/api/buses/default/rules/gates").json()
    assert unchanged["event_pattern"] == rule["event_pattern"]
    missing = client.put(
        "/api/console/buses/default/rules/none/pattern", json={"event_pattern": {"source": ["a"]}}
    )
    assert missing.status_code == 404


@pytest.fixture
def distributed_client(postgres_url: str, nats_url: str, nats_prefix: str) -> Iterator[TestClient]:
    """A platform in distributed mode: deliveries and dead letters in JetStream."""
    handlers.reset()
    settings = Settings(
        database_url=postgres_url,
        nats_url=nats_url,
        nats_prefix=nats_prefix,
        retry_base_seconds=0.02,
        retry_max_backoff_seconds=0.1,
    )
    with TestClient(create_app(settings, handlers=handlers.HANDLERS)) as test_client:
        as_operator(test_client)
        yield test_client


def test_an_edited_dead_letter_goes_to_its_own_target_only(client: TestClient) -> None:
    edited_dead_letter_goes_to_its_own_target_only(client)


def test_an_edited_dead_letter_from_the_jetstream_dlq_goes_to_its_own_target_only(
    distributed_client: TestClient,
) -> None:
    edited_dead_letter_goes_to_its_own_target_only(distributed_client)


def edited_dead_letter_goes_to_its_own_target_only(client: TestClient) -> None:
    failing = {
        "id": "down",
        "kind": "python",
        "handler": "always-fails",
        "retry_policy": {"maximum_retry_attempts": 0, "maximum_event_age_seconds": 3600},
    }
    for name, targets in (("down", [failing]), ("bystander", [])):
        body = {"name": name, "event_pattern": {"source": ["airport.gates"]}, "targets": targets}
        assert client.put(f"/api/buses/default/rules/{name}", json=body).status_code == 200
    publish(client, gate_event(4, "C9"))
    (letter,) = wait_for(lambda: client.get("/api/dlq").json())
    fixed = {**failing, "handler": "record"}
    assert client.put("/api/buses/default/rules/down/targets", json=[fixed]).status_code == 200
    event = {**letter["event"], "data": {"gate": "C10", "n": 4}}
    forged = client.post(
        f"/api/console/dlq/{letter['id']}/redrive",
        json={"event": {**event, "source": "jetbridge.flights"}},
    )
    assert forged.status_code == 400 and "source" in forged.json()["message"]
    broken = client.post(
        f"/api/console/dlq/{letter['id']}/redrive", json={"event": {**event, "data": [1]}}
    )
    assert broken.status_code == 400 and "data" in broken.json()["message"]
    answer = client.post(f"/api/console/dlq/{letter['id']}/redrive", json={"event": event})
    assert answer.status_code == 200, answer.text
    (received,) = wait_for(lambda: handlers.RECEIVED["record"])
    assert received["detail"] == {"gate": "C10", "n": 4}
    assert received["id"] != letter["event"]["id"]
    assert client.get("/api/dlq").json() == []
    again = client.post(f"/api/console/dlq/{letter['id']}/redrive", json={"event": event})
    assert again.status_code == 404
    for hostile in (-1, 10**20):
        assert (
            client.post(f"/api/console/dlq/{hostile}/redrive", json={"event": event}).status_code
            == 422
        )


MACHINE = {
    "StartAt": "Check",
    "States": {
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.ok", "BooleanEquals": True, "Next": "Both"}],
            "Default": "Refuse",
        },
        "Both": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "Left", "States": {"Left": {"Type": "Pass", "End": True}}},
                {"StartAt": "Right", "States": {"Right": {"Type": "Pass", "End": True}}},
            ],
            "Next": "Explode",
        },
        "Explode": {"Type": "Fail", "Error": "Broken", "Cause": "on purpose"},
        "Refuse": {"Type": "Succeed"},
    },
}


def test_an_executions_graph_marks_where_it_went_and_where_it_failed(client: TestClient) -> None:
    started = client.post(
        "/api/workflows/executions",
        json={"name": "shown", "definition": MACHINE, "input": {"ok": True}},
    )
    assert started.status_code == 201, started.text
    wait_for(lambda: client.get("/api/workflows/executions/shown").json()["status"] != "RUNNING")
    graph = client.get("/api/console/executions/shown/graph")
    assert graph.status_code == 200, graph.text
    body = graph.json()
    status = {node["id"]: node["status"] for node in body["nodes"]}
    assert body["status"] == "FAILED" and body["start"] == "Check"
    assert status["Check"] == status["Both"] == "succeeded"
    assert status["Both/0/Left"] == status["Both/1/Right"] == "succeeded"
    assert status["Explode"] == "failed"
    assert status["Refuse"] == "not-reached"
    edges = {(e["from"], e["to"], e["kind"]) for e in body["edges"]}
    assert ("Check", "Both", "choice") in edges and ("Check", "Refuse", "default") in edges
    assert ("Both/0", "Both/0/Left", "start") in edges and ("Both", "Explode", "next") in edges
    assert client.get("/api/console/executions/nothing/graph").status_code == 404
    ensure_tenant(client.app, "LX")
    other = client.get(
        "/api/console/executions/shown/graph",
        headers=bearer(client.app, roles=("operations",), tenant="LX"),
    )
    assert other.status_code == 404


def test_a_running_state_is_current_and_malformed_definitions_still_draw() -> None:
    history = [
        {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "Pay"}},
    ]
    machine = {
        "StartAt": "Pay",
        "States": {
            "Pay": {
                "Type": "Task",
                "Resource": "x",
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Undo"}],
                "Next": "Done",
            },
            "Undo": {"Type": "Pass", "Next": "Gone"},  # to a state that does not exist
            "Done": {"Type": "Succeed"},
            "Odd": "not a state",
        },
    }
    graph = execution_graph(machine, history, "RUNNING")
    status = {node["id"]: node["status"] for node in graph["nodes"]}
    assert status == {"Pay": "current", "Undo": "not-reached", "Done": "not-reached"}
    assert {(e["from"], e["to"], e["kind"]) for e in graph["edges"]} == {
        ("Pay", "Undo", "catch"),
        ("Pay", "Done", "next"),
    }
    assert execution_graph({"States": "x"}, [], "FAILED")["nodes"] == []


class Reader(threading.Thread):
    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.url, self.headers = url, headers
        self.subjects: list[str] = []
        self.open = threading.Event()

    def run(self) -> None:
        with httpx.stream("GET", self.url, headers=self.headers, timeout=30) as response:
            self.open.set()
            for line in response.iter_lines():
                if line.startswith("data: "):
                    self.subjects.append(json.loads(line[6:])["subject"])


def test_the_live_tail_sends_only_what_its_pattern_matches(sqlite_url: str) -> None:
    app = create_app(Settings(database_url=sqlite_url))
    backbone = app.state.platform.backbone
    with serve_app(app) as base:
        auth = bearer(app)
        pattern = json.dumps({"detail": {"gate": ["A1"]}})
        wanted = Reader(f"{base}/api/buses/default/stream?pattern={pattern}", auth)
        everything = Reader(f"{base}/api/buses/default/stream", auth)
        for reader in (wanted, everything):
            reader.start()
            assert reader.open.wait(10)
        backbone.put_events(
            bus="default", entries=[gate_event(n, "A1" if n % 2 else "B2") for n in range(6)]
        )
        wait_for(lambda: len(everything.subjects) == 6 and len(wanted.subjects) == 3)
        assert wanted.subjects == ["LX1", "LX3", "LX5"]
        bad = httpx.get(
            f"{base}/api/buses/default/stream", params={"pattern": "{nope"}, headers=auth, timeout=5
        )
        assert bad.status_code == 400 and "pattern" in bad.json()["message"]
