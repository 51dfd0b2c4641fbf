"""A rule starts a workflow execution with the event as input, once per event."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.config import Settings
from support.auth import as_operator

DEFINITION = {
    "StartAt": "Pick",
    "States": {
        "Pick": {
            "Type": "Pass",
            "Parameters": {"flight.$": "$.detail.flight", "gate.$": "$.detail.gate"},
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}


def test_a_rule_starts_an_execution_per_event(database_url: str) -> None:
    settings = Settings(database_url=database_url, delivery_poll_seconds=0.05)
    with TestClient(create_app(settings)) as client:
        as_operator(client)
        rule = {
            "name": "gate-workflow",
            "event_pattern": {"detail-type": ["flight.gate_changed"]},
            "targets": [{"id": "wf", "kind": "workflow", "definition": DEFINITION}],
        }
        assert client.put("/api/buses/default/rules/gate-workflow", json=rule).status_code == 200
        event = {
            "specversion": "1.0",
            "id": "e-42",
            "source": "airport.gates",
            "type": "flight.gate_changed",
            "data": {"flight": "LX318", "gate": "E24"},
        }
        client.post("/api/buses/default/events", json={"entries": [event]})
        deadline = time.time() + 15
        done: list[dict[str, object]] = []
        while time.time() < deadline:
            done = client.get("/api/workflows/executions", params={"status": "SUCCEEDED"}).json()
            if done:
                break
            time.sleep(0.05)
        (execution,) = done
        assert execution["name"] == "gate-workflow-e-42"
        assert execution["output"] == {"flight": "LX318", "gate": "E24"}


def test_an_invalid_workflow_target_is_rejected(sqlite_url: str) -> None:
    with TestClient(create_app(Settings(database_url=sqlite_url, run_workers=False))) as client:
        as_operator(client)
        bad = {"StartAt": "Nope", "States": {"A": {"Type": "Succeed"}}}
        rule = {
            "name": "bad",
            "event_pattern": {"source": ["x"]},
            "targets": [{"id": "wf", "kind": "workflow", "definition": bad}],
        }
        response = client.put("/api/buses/default/rules/bad", json=rule)
        assert response.status_code == 400
        assert "targets[0].definition" in response.json()["message"]
        assert "StartAt" in response.json()["message"]
