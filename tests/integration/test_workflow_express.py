"""Express executions over HTTP: answered at once, never stored, refused when they wait for a
callback; Standard executions stay durable beside them."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.config import Settings
from support.auth import as_operator

ECHO = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "Echo", "End": True}}}


def test_express_executions_answer_at_once_and_leave_nothing_stored(sqlite_url: str) -> None:
    app = create_app(Settings(database_url=sqlite_url, delivery_poll_seconds=0.05))
    calls: list[Any] = []
    with TestClient(app) as client:
        as_operator(client)
        app.state.platform.workflows.handlers["Echo"] = lambda p: calls.append(p) or p
        answer = client.post(
            "/api/workflows/executions/sync",
            json={"name": "quick-1", "definition": ECHO, "input": {"n": 1}},
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["status"], body["output"], body["type"]) == ("SUCCEEDED", {"n": 1}, "EXPRESS")
        assert calls == [{"n": 1}]
        assert client.get("/api/workflows/executions").json() == []
        assert client.get("/api/workflows/executions/quick-1").status_code == 404
        # The same name again runs again: an Express execution is not idempotent by name.
        again = client.post(
            "/api/workflows/executions/sync",
            json={"name": "quick-1", "definition": ECHO, "input": {"n": 2}},
        )
        assert again.json()["output"] == {"n": 2}


def test_an_express_execution_that_waits_for_a_callback_is_refused(sqlite_url: str) -> None:
    app = create_app(Settings(database_url=sqlite_url, delivery_poll_seconds=0.05))
    with TestClient(app) as client:
        as_operator(client)
        app.state.platform.workflows.handlers["Echo"] = lambda p: p
        waiting = {
            "StartAt": "T",
            "States": {"T": {"Type": "Task", "Resource": "Echo.waitForTaskToken", "End": True}},
        }
        refused = client.post(
            "/api/workflows/executions/sync",
            json={"name": "quick-2", "definition": waiting, "input": {}},
        )
        assert refused.status_code == 400
        assert refused.json()["message"] == (
            "States.T.Resource: an Express workflow does not support the callback pattern "
            "(.waitForTaskToken); use a Standard workflow"
        )
        assert client.get("/api/workflows/executions").json() == []
