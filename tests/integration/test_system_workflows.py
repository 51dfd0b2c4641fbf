"""The booking saga's tasks serve the booking saga alone, and its executions are the platform's:
callers' state machines cannot reach the tasks, and callers cannot start, stop or answer them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, insert, select

from jetbridge.app import create_app
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.config import Settings
from jetbridge.errors import Conflict, Forbidden
from jetbridge.payments.test_provider import DECLINE, Ledger, create_test_provider
from jetbridge.storage.schema import executions, tickets
from jetbridge.workflows import InvalidDefinition
from jetbridge.workflows.engine import WorkflowEngine
from support.auth import as_operator
from support.servers import serve_app

DAY = (datetime.now(UTC) + timedelta(days=20)).date()
FLIGHT = f"LX0100-{DAY.isoformat()}"
LAMBDA = "arn:aws:lambda:local:000000000000:function:"


def eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def booking_app(database_url: str) -> Iterator[TestClient]:
    with serve_app(create_test_provider(Ledger(timeout_seconds=2))) as provider_url:
        settings = Settings(
            database_url=database_url, payments_url=provider_url, delivery_poll_seconds=0.05
        )
        app = create_app(settings)
        with TestClient(app, raise_server_exceptions=False) as client:
            as_operator(client)
            with app.state.platform.backbone.transaction() as conn:
                import_schedule(conn, demo_schedule(start=DAY, days=1))
            yield client


def declined_booking(client: TestClient) -> str:
    body = {
        "flight_id": FLIGHT, "cabin": "economy", "customer_id": "cust-1",
        "passengers": [{"given_name": "Ada", "family_name": "Lovelace"}],
        "payment": {"card": DECLINE},
    }  # fmt: skip
    response = client.post("/api/bookings", json=body, headers={"Idempotency-Key": "key-decl-01"})
    assert response.status_code in {200, 202}, response.text
    booking_id = str(response.json()["booking_id"])

    def saga_ended() -> bool:
        saga = client.get(f"/api/workflows/executions/booking-{booking_id}").json()
        return bool(saga["status"] != "RUNNING")

    eventually(saga_ended)
    assert client.get(f"/api/bookings/{booking_id}").json()["status"] == "failed"
    return booking_id


def chain(*resources: str, **extra: Any) -> dict[str, Any]:
    names = [f"S{n}" for n in range(len(resources))]
    states: dict[str, Any] = {}
    for index, (name, resource) in enumerate(zip(names, resources, strict=True)):
        following = {"Next": names[index + 1]} if index + 1 < len(names) else {"End": True}
        states[name] = {"Type": "Task", "Resource": resource, **extra, **following}
    return {"StartAt": names[0], "States": states}


def start(client: TestClient, name: str, definition: dict[str, Any], data: Any) -> Any:
    body = {"name": name, "definition": definition, "input": data}
    return client.post("/api/workflows/executions", json=body)


def nothing_ticketed(client: TestClient, booking_id: str) -> None:
    assert client.get(f"/api/bookings/{booking_id}").json()["status"] == "failed"
    engine = client.app.state.platform.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        issued = conn.execute(
            select(func.count()).where(tickets.c.booking_id == booking_id)
        ).scalar_one()
    assert issued == 0
    types = {
        e["event"]["type"]
        for e in client.get("/api/buses/default/events", params={"limit": 1000}).json()
    }
    assert "ticket.issued" not in types and "booking.confirmed" not in types


def test_a_declined_booking_cannot_be_ticketed_by_a_callers_state_machine(
    booking_app: TestClient,
) -> None:
    client = booking_app
    booking_id = declined_booking(client)
    data = {"booking_id": booking_id}
    refused = start(client, "steal", chain(f"{LAMBDA}ReserveSeat", f"{LAMBDA}IssueTicket"), data)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "InvalidDefinition"
    assert "States.S0.Resource" in refused.json()["message"]
    assert "ReserveSeat" in refused.json()["message"]
    for resource in ("IssueTicket", "ProcessPayment", f"{LAMBDA}RefundPayment.waitForTaskToken"):
        response = start(client, "steal", chain(resource), data)
        assert response.status_code == 400, response.text
        assert resource in response.json()["message"]
    invoke = chain(
        "arn:aws:states:::lambda:invoke",
        Parameters={"FunctionName": "IssueTicket", "Payload.$": "$"},
    )
    response = start(client, "steal", invoke, data)
    assert response.status_code == 400, response.text
    assert "'IssueTicket'" in response.json()["message"]
    nested = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [chain("arn:aws:states:::http:invoke"), chain("IssueTicket")],
                "End": True,
            }
        },
    }
    response = start(client, "steal", nested, data)
    assert response.status_code == 400, response.text
    assert "States.Both.Branches[1].States.S0.Resource" in response.json()["message"]
    # Chosen at run time, the function is still looked up among public handlers only.
    dynamic = chain(
        "arn:aws:states:::lambda:invoke",
        Parameters={"FunctionName.$": "$.fn", "Payload": data},
    )
    started = start(client, "steal-late", dynamic, {"fn": "IssueTicket"})
    assert started.status_code == 201, started.text

    def ended() -> Any:
        execution = client.get("/api/workflows/executions/steal-late").json()
        return execution if execution["status"] != "RUNNING" else None

    execution = eventually(ended)
    assert execution["status"] == "FAILED"
    assert "no handler for resource 'IssueTicket'" in execution["cause"]
    nothing_ticketed(client, booking_id)


def test_callers_cannot_start_or_stop_the_booking_saga(booking_app: TestClient) -> None:
    client = booking_app
    booking_id = declined_booking(client)
    saga = client.get(f"/api/workflows/executions/booking-{booking_id}").json()
    assert saga["machine"] == "booking"
    stopped = client.post(f"/api/workflows/executions/booking-{booking_id}/stop")
    assert stopped.status_code == 403, stopped.text
    assert "booking" in stopped.json()["message"]
    assert client.get(f"/api/workflows/executions/booking-{booking_id}").json() == saga
    passing = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    for name in (f"booking-{booking_id}", "booking-future", "booking-"):
        response = start(client, name, passing, {"booking_id": booking_id})
        assert response.status_code == 403, response.text
        assert "'booking-'" in response.json()["message"]
    assert start(client, "bookings-report", passing, {}).status_code == 201
    nothing_ticketed(client, booking_id)


# The engine itself, with a system machine whose executions wait where a caller could reach them.


def test_system_executions_are_not_answered_or_stopped_by_callers(engine: Engine) -> None:
    tokens: list[str] = []
    secrets_read: list[Any] = []
    workflows = WorkflowEngine(engine, {"Public": lambda payload: "public"}, secret="s")
    workflows.add_system_machine(
        "ops",
        prefix="ops-",
        handlers={"Ask": lambda p: tokens.append(p["token"]), "Secret": secrets_read.append},
    )
    callback = chain(
        "Ask.waitForTaskToken", Parameters={"token.$": "$$.Task.Token"}, TimeoutSeconds=600
    )
    workflows.start_system(machine="ops", name="ops-1", definition=callback, input={})
    workflows.run_one()
    (token,) = tokens
    for answer in (
        lambda: workflows.send_task_success(token=token, output={"approved": True}),
        lambda: workflows.send_task_failure(token=token, error="Refused"),
        lambda: workflows.send_task_heartbeat(token=token),
        lambda: workflows.stop(name="ops-1"),
    ):
        with pytest.raises(Forbidden, match="'ops-1' belongs to the platform's ops state machine"):
            answer()
    assert workflows.describe(name="ops-1")["status"] == "RUNNING"
    with pytest.raises(Forbidden, match="machine: 'ops'"):
        workflows.start(name="other", definition=callback, input={}, machine="ops")
    with pytest.raises(Forbidden, match="'ops-'"):
        workflows.start(name="ops-2", definition=chain("Public"), input={})
    with pytest.raises(InvalidDefinition, match=r"States\.S0\.Resource: 'Secret'"):
        workflows.start(name="x", definition=chain("Secret"), input={})
    with pytest.raises(ValueError, match="ops executions are named ops-"):
        workflows.start_system(machine="ops", name="x", definition=callback, input={})
    assert workflows.stop_system(name="ops-1")["status"] == "ABORTED"
    assert secrets_read == []
    workflows.start(name="shared", definition=chain("Public"), input={}, machine="rule")
    with pytest.raises(Conflict, match="'shared' exists for another state machine"):
        workflows.start(name="shared", definition=chain("Public"), input={})


def test_a_stored_callers_execution_cannot_reach_system_handlers(engine: Engine) -> None:
    """An execution row written under laxer rules (or forged) runs with public handlers only."""
    reached: list[Any] = []
    workflows = WorkflowEngine(engine, {})
    workflows.add_system_machine("ops", prefix="ops-", handlers={"Secret": reached.append})
    with engine.begin() as conn:
        conn.execute(
            insert(executions).values(
                name="old-1",
                machine="machine",
                definition=json.dumps(chain("Secret")),
                status="RUNNING",
                input="{}",
                started_at=time.time(),
            )
        )
    assert workflows.run_one()
    ended = workflows.describe(name="old-1")
    assert (ended["status"], ended["error"]) == ("FAILED", "States.Runtime")
    assert "no handler for resource 'Secret'" in ended["cause"]
    assert reached == []
