"""Callers name registered handlers, never code; the platform's rules and event sources are its
own. Each test replays an attack through the real API and checks that it changes nothing."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.events.routing import bump_version
from jetbridge.flights.hub import FlightHub
from jetbridge.flights.merge import Update
from jetbridge.flights.model import FlightIdentity
from jetbridge.storage.schema import rules, targets
from support import handlers
from support.auth import as_operator, bearer
from support.servers import serve_app

DAY = date(2026, 11, 24)


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
    )
    app = create_app(settings, handlers=handlers.HANDLERS)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        # The platform's operator: even the most privileged caller cannot name code.
        as_operator(test_client)
        yield test_client


def command_event(marker: Path, source: str = "attacker") -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "source": source,
        "type": "run",
        "data": {"cmd": f"touch {marker}"},
    }


def rule_with(*target_list: dict[str, Any], name: str = "shell") -> dict[str, Any]:
    return {"name": name, "event_pattern": {"source": ["attacker"]}, "targets": list(target_list)}


def rule_names(client: TestClient, bus: str = "default") -> list[str]:
    return [rule["name"] for rule in client.get(f"/api/buses/{bus}/rules").json()]


def test_a_rule_naming_os_system_is_refused_and_runs_nothing(
    client: TestClient, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    target = {"id": "cmd", "kind": "python", "handler": "os:system", "input_path": "$.detail.cmd"}
    anonymous = client.put(
        "/api/buses/default/rules/shell", json=rule_with(target), headers={"Authorization": ""}
    )
    assert anonymous.status_code == 401, anonymous.text
    response = client.put("/api/buses/default/rules/shell", json=rule_with(target))
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert "targets[0].handler" in message
    assert "'cmd'" in message and "'os:system'" in message
    assert "shell" not in rule_names(client)
    published = client.post("/api/buses/default/events", json={"entries": [command_event(marker)]})
    assert published.json()["entries"][0]["deliveries"] == 0
    assert not marker.exists()


@pytest.mark.parametrize(
    "handler",
    [
        "os:system",
        "os.system",
        "subprocess:run",
        "builtins.exec",
        "support.handlers:record",
        "jetbridge.demo:log_gate_change",
        "service:subscriptions.fan-out",
        "service:subscriptions.webhook",
        "Record",
        "record ",
        " record",
        "record\n",
        "../record",
        "",
        "not-registered",
        "r" * 65,
    ],
)
def test_only_registered_handler_names_are_accepted(client: TestClient, handler: str) -> None:
    target = {"id": "t", "kind": "python", "handler": handler}
    response = client.put("/api/buses/default/rules/shell", json=rule_with(target))
    assert response.status_code == 400, response.text
    assert "targets[0].handler" in response.json()["message"]
    assert "shell" not in rule_names(client)
    assert client.put("/api/buses/default/rules/ok", json=rule_with(name="ok")).status_code == 200
    added = client.put("/api/buses/default/rules/ok/targets", json=[target])
    assert added.status_code == 400, added.text
    assert client.get("/api/buses/default/rules/ok").json()["targets"] == []


def test_a_forged_rule_row_naming_code_is_dead_lettered_without_running(
    client: TestClient, tmp_path: Path
) -> None:
    """Even a rule written straight into the database cannot make the worker import code."""
    marker = tmp_path / "pwned"
    backbone = client.app.state.platform.backbone  # type: ignore[attr-defined]
    with backbone.transaction() as conn:
        conn.execute(
            insert(rules).values(
                bus="default",
                name="forged",
                pattern=json.dumps({"source": ["attacker"]}),
                state="ENABLED",
                description="",
                created_at=time.time(),
                updated_at=time.time(),
            )
        )
        conn.execute(
            insert(targets).values(
                bus="default",
                rule="forged",
                target_id="cmd",
                kind="python",
                config=json.dumps({"handler": "os:system"}),
                input=json.dumps({"input_path": "$.detail.cmd"}),
                max_retry_attempts=185,
                max_event_age_seconds=86400,
                dead_letter=True,
            )
        )
        bump_version(conn, "default")
    shown = client.get("/api/buses/default/rules/forged").json()
    assert shown["targets"][0]["handler"] == "os:system"
    published = client.post("/api/buses/default/events", json={"entries": [command_event(marker)]})
    assert published.json()["entries"][0]["deliveries"] == 1
    (letter,) = wait_for(lambda: client.get("/api/dlq").json())
    assert letter["rule"] == "forged"
    assert letter["attempts"] == 1, "an unknown handler is not retried"
    assert "no handler named 'os:system' is registered" in letter["error"]
    assert not marker.exists()


def test_registered_handlers_and_workflow_targets_still_work(client: TestClient) -> None:
    target = {"id": "rec", "kind": "python", "handler": "record", "input_path": "$.detail"}
    assert client.put("/api/buses/default/rules/ok", json=rule_with(target, name="ok")).is_success
    event = {"specversion": "1.0", "source": "attacker", "type": "t", "data": {"n": 1}}
    client.post("/api/buses/default/events", json={"entries": [event]})
    assert wait_for(lambda: handlers.RECEIVED["record"]) == [{"n": 1}]


def test_a_workflow_target_cannot_reach_the_booking_saga_tasks(client: TestClient) -> None:
    definition = {
        "StartAt": "Ticket",
        "States": {
            "Ticket": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:local:000000000000:function:IssueTicket",
                "End": True,
            }
        },
    }
    target = {"id": "wf", "kind": "workflow", "definition": definition}
    response = client.put("/api/buses/default/rules/wf", json=rule_with(target, name="wf"))
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert "targets[0].definition" in message
    assert "States.Ticket.Resource" in message and "IssueTicket" in message
    assert "wf" not in rule_names(client)


def test_the_platform_rules_cannot_be_changed_by_callers(client: TestClient) -> None:
    path = "/api/buses/default/rules/subscriptions-fan-out"
    before = client.get(path).json()
    assert before["targets"][0]["handler"] == "service:subscriptions.fan-out"
    replaced = {
        "name": "subscriptions-fan-out",
        "event_pattern": {"source": ["attacker"]},
        "targets": [{"id": "rec", "kind": "python", "handler": "record"}],
    }
    attempts = [
        client.put(path, json=replaced),
        client.put(f"{path}/targets", json=[{"id": "rec", "kind": "python", "handler": "record"}]),
        client.delete(f"{path}/targets/fan-out"),
        client.post(f"{path}/disable"),
        client.delete(path),
        client.delete("/api/buses/notifications/rules/notify-webhook"),
    ]
    for response in attempts:
        assert response.status_code == 403, response.text
        assert "belongs to the platform" in response.json()["message"]
    assert client.get(path).json() == before


@pytest.mark.parametrize(
    "entry",
    [
        {"specversion": "1.0", "source": "jetbridge.flights", "type": "flight.updated"},
        {"specversion": "1.0", "source": "jetbridge.booking", "type": "booking.confirmed"},
        {"specversion": "1.0", "source": "jetbridge.notify", "type": "notification.requested"},
        {"specversion": "1.0", "source": "JETBRIDGE.Flights", "type": "flight.updated"},
        {"specversion": "1.0", "source": "aws.events", "type": "Scheduled Event"},
        {"Source": "jetbridge.flights", "DetailType": "flight.updated", "Detail": "{}"},
        {"Source": "aws.ec2", "DetailType": "x", "Detail": "{}"},
    ],
)
def test_callers_cannot_publish_the_platform_sources(
    client: TestClient, entry: dict[str, Any]
) -> None:
    before = len(client.get("/api/buses/default/events").json())
    fine = {"specversion": "1.0", "source": "airport.ops", "type": "t"}
    response = client.post("/api/buses/default/events", json={"entries": [fine, entry]})
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert message.startswith("entries[1]: source:")
    assert "reserved for the platform" in message
    assert len(client.get("/api/buses/default/events").json()) == before, "nothing is written"


def departing(value: str) -> Update:
    identity = FlightIdentity.create(
        airline="LX",
        flight_number="18",
        origin_date=DAY,
        departure_airport="ZRH",
        arrival_airport="JFK",
    )
    return Update(identity, "test", datetime.now(UTC), {"gate": value})


class BoardReader(threading.Thread):
    """A FIDS board's stream, keeping the data of every `flight` frame."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.rows: list[dict[str, Any]] = []
        self.open = threading.Event()

    def run(self) -> None:
        with httpx.stream("GET", self.url, timeout=30) as response:
            kind = ""
            for line in response.iter_lines():
                self.open.set()
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "flight":
                    self.rows.append(json.loads(line[6:]))


def test_a_forged_flight_event_never_reaches_the_board(sqlite_url: str) -> None:
    app = create_app(Settings(database_url=sqlite_url))
    hub = FlightHub(app.state.platform.backbone)
    with serve_app(app) as base:
        auth = bearer(app)
        hub.apply_all([departing("A1")])
        board = f"{base}/api/fids/ZRH/departures?date={DAY.isoformat()}"
        reader = BoardReader(f"{base}/api/fids/ZRH/departures/stream?date={DAY.isoformat()}")
        reader.start()
        assert reader.open.wait(10)
        stored = httpx.get(f"{base}/api/buses/default/events", headers=auth).json()
        genuine = [e["event"] for e in stored if e["event"]["type"] == "flight.updated"][-1]
        forged = json.loads(json.dumps(genuine))
        forged.pop("id")
        forged["data"]["flight"].update({"gate": "Z99", "status": "cancelled"})
        refused = httpx.post(
            f"{base}/api/buses/default/events", json={"entries": [forged]}, headers=auth
        )
        assert refused.status_code == 400, refused.text
        assert "jetbridge.flights" in refused.json()["message"]
        # Another source with the hub's event type is published but shown on no board.
        lookalike = {**forged, "source": "jetbridge-flights"}
        accepted = httpx.post(
            f"{base}/api/buses/default/events", json={"entries": [lookalike]}, headers=auth
        )
        assert accepted.status_code == 200, accepted.text
        hub.apply_all([departing("B2")])
        wait_for(lambda: any(row.get("gate") == "B2" for row in reader.rows))
        assert not any(row.get("gate") == "Z99" for row in reader.rows)
        (row,) = httpx.get(board).json()
        assert row["gate"] == "B2"
        assert row["status"] != "cancelled"


def test_handlers_granted_to_one_tenant_are_refused_to_others(sqlite_url: str) -> None:
    from jetbridge.events.handlers import HandlerRegistry

    registry = HandlerRegistry(handlers.HANDLERS)
    registry.register("lx-only", handlers.record_other, tenants=["LX"])
    app = create_app(Settings(database_url=sqlite_url, run_workers=False), handlers=registry)
    with TestClient(app) as client:
        lx = bearer(app, roles=("operations",), tenant="LX")
        ba = bearer(app, roles=("operations",), tenant="BA")
        rule = {"name": "r", "event_pattern": {"source": ["x"]},
                "targets": [{"id": "t", "kind": "python", "handler": "lx-only"}]}  # fmt: skip
        assert client.put("/api/buses/tenant-lx/rules/r", json=rule, headers=lx).status_code == 200
        refused = client.put("/api/buses/tenant-ba/rules/r", json=rule, headers=ba)
        assert refused.status_code == 400 and "not granted" in refused.json()["message"]
        machine = {
            "StartAt": "A",
            "States": {"A": {"Type": "Task", "Resource": "lx-only", "End": True}},
        }
        started = client.post("/api/workflows/executions", headers=ba,
                              json={"name": "ba-1", "definition": machine, "input": {}})  # fmt: skip
        assert started.status_code == 400 and "not granted" in started.json()["message"]
        ok = client.post("/api/workflows/executions", headers=lx,
                         json={"name": "lx-1", "definition": machine, "input": {}})  # fmt: skip
        assert ok.status_code == 201, ok.text
