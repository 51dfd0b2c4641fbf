"""Redrive (RedriveExecution) on SQLite and PostgreSQL: an unsuccessful execution goes on from
its unsuccessful step; what succeeded is not run again; the history only grows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.errors import Conflict, Forbidden, NotFound
from jetbridge.storage.schema import executions
from jetbridge.workflows.engine import WorkflowEngine
from support.auth import bearer

TWO_TASKS = {
    "StartAt": "Reserve",
    "States": {
        "Reserve": {"Type": "Task", "Resource": "Reserve", "ResultPath": "$.r", "Next": "Pay"},
        "Pay": {
            "Type": "Task",
            "Resource": "Pay",
            "ResultPath": "$.p",
            "Next": "Context",
            "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 1, "IntervalSeconds": 0}],
        },
        "Context": {
            "Type": "Pass",
            "Parameters": {"count.$": "$$.Execution.RedriveCount"},
            "ResultPath": "$.context",
            "End": True,
        },
    },
}


class Flaky:
    """A handler that fails while `failing` is set, and counts its calls."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.failing = True
        self.calls: list[Any] = []

    def __call__(self, payload: Any) -> Any:
        self.calls.append(payload)
        if self.failing:
            raise RuntimeError("card declined")
        return self.result


def test_a_failed_execution_redrives_from_the_failed_step(engine: Engine) -> None:
    reserve, pay = Flaky("seat"), Flaky("paid")
    reserve.failing = False
    workflows = WorkflowEngine(engine, {"Reserve": reserve, "Pay": pay})
    workflows.start(name="b-1", definition=TWO_TASKS, input={"id": 1})
    workflows.run_one()
    failed = workflows.describe(name="b-1")
    assert failed["status"] == "FAILED" and failed["redriveStatus"] == "REDRIVABLE"
    assert failed["redriveCount"] == 0
    before = workflows.history(name="b-1")
    assert len(pay.calls) == 2  # the first attempt and its retry

    pay.failing = False
    redriven = workflows.redrive(name="b-1")
    assert redriven["status"] == "RUNNING" and redriven["redriveCount"] == 1
    assert redriven["redriveDate"] is not None and redriven["error"] is None
    assert redriven["redriveStatus"] == "NOT_REDRIVABLE"
    assert workflows.run_one() is True
    done = workflows.describe(name="b-1")
    assert done["status"] == "SUCCEEDED"
    assert done["output"] == {"id": 1, "r": "seat", "p": "paid", "context": {"count": 1}}
    assert len(reserve.calls) == 1  # the step that succeeded ran once
    assert len(pay.calls) == 3  # the failed step ran again, with its retries anew

    history = workflows.history(name="b-1")
    assert history[: len(before)] == before  # nothing recorded was changed or removed
    redrive = history[len(before)]
    assert redrive["type"] == "ExecutionRedriven"
    assert redrive["executionRedrivenEventDetails"] == {"redriveCount": 1}
    superseded = {event["id"] for event in before if event["id"] in redrive["supersededEventIds"]}
    kinds = [event["type"] for event in before if event["id"] in superseded]
    assert kinds[0] == "TaskStateEntered" and kinds[-1] == "ExecutionFailed"
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    after = [event["type"] for event in history[len(before) + 1 :]]
    assert after[0] == "TaskStateEntered" and after[-1] == "ExecutionSucceeded"
    assert after.count("TaskSucceeded") == 1


def test_only_unsuccessful_executions_within_the_rules_are_redriven(engine: Engine) -> None:
    pay = Flaky("paid")
    workflows = WorkflowEngine(engine, {"Reserve": lambda p: "seat", "Pay": pay})
    with pytest.raises(NotFound):
        workflows.redrive(name="nobody")
    workflows.start(name="running", definition=TWO_TASKS, input={})
    with pytest.raises(Conflict, match="RUNNING"):
        workflows.redrive(name="running")
    workflows.run_one()
    pay.failing = False
    workflows.redrive(name="running")
    workflows.run_one()
    assert workflows.describe(name="running")["status"] == "SUCCEEDED"
    with pytest.raises(Conflict, match="SUCCEEDED"):
        workflows.redrive(name="running")
    assert workflows.describe(name="running")["redriveStatus"] == "NOT_REDRIVABLE"

    pay.failing = True
    workflows.start(name="old", definition=TWO_TASKS, input={})
    workflows.run_one()
    with engine.begin() as conn:
        conn.execute(
            update(executions)
            .where(executions.c.name == "old")
            .values(stopped_at=time.time() - 15 * 24 * 3600)
        )
    with pytest.raises(Conflict, match="redrivable period exceeded"):
        workflows.redrive(name="old")


def test_an_aborted_execution_redrives_and_its_stopped_worker_writes_nothing(
    engine: Engine,
) -> None:
    stopped = threading.Event()
    release = threading.Event()
    calls: list[str] = []

    def reserve(payload: Any) -> str:
        calls.append("r")
        if len(calls) == 1:
            stopped.wait(30)
            release.wait(30)
        return "seat"

    workflows = WorkflowEngine(engine, {"Reserve": reserve, "Pay": lambda p: "paid"})
    workflows.start(name="stop-me", definition=TWO_TASKS, input={})
    worker = threading.Thread(target=workflows.run_one)
    worker.start()
    while not calls:
        time.sleep(0.01)
    workflows.stop(name="stop-me")
    stopped.set()
    workflows.redrive(name="stop-me")
    release.set()  # the stopped attempt's task ends after the redrive: fenced off
    worker.join(30)
    assert workflows.run_one() is True
    done = workflows.describe(name="stop-me")
    assert done["status"] == "SUCCEEDED", done
    history = workflows.history(name="stop-me")
    redrive = next(e for e in history if e["type"] == "ExecutionRedriven")
    live = [
        e["type"]
        for e in history
        if e["id"] not in redrive["supersededEventIds"] and e["type"] != "ExecutionRedriven"
    ]
    assert live.count("TaskSucceeded") == 2  # Reserve and Pay, once each in the live record
    assert live[-1] == "ExecutionSucceeded"


def test_two_concurrent_redrives_redrive_once(engine: Engine) -> None:
    pay = Flaky("paid")
    workflows = WorkflowEngine(engine, {"Reserve": lambda p: "seat", "Pay": pay})
    workflows.start(name="race", definition=TWO_TASKS, input={})
    workflows.run_one()
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def redrive() -> None:
        barrier.wait()
        try:
            workflows.redrive(name="race")
            outcomes.append("redriven")
        except Conflict:
            outcomes.append("refused")

    threads = [threading.Thread(target=redrive) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["redriven", "refused"]
    assert workflows.describe(name="race")["redriveCount"] == 1
    kinds = [e["type"] for e in workflows.history(name="race")]
    assert kinds.count("ExecutionRedriven") == 1


def test_a_map_redrives_only_its_failed_iterations(engine: Engine) -> None:
    calls: list[int] = []
    broken = {2}

    def price(item: int) -> int:
        calls.append(item)
        if item in broken:
            raise RuntimeError(f"no fare for {item}")
        return item * 10

    definition = {
        "StartAt": "Prices",
        "States": {
            "Prices": {
                "Type": "Map",
                "MaxConcurrency": 1,
                "ItemProcessor": {
                    "StartAt": "Price",
                    "States": {"Price": {"Type": "Task", "Resource": "Price", "End": True}},
                },
                "Next": "Both",
            },
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "StartAt": "A",
                        "States": {
                            "A": {
                                "Type": "Task",
                                "Resource": "Price",
                                "InputPath": "$[0]",
                                "End": True,
                            }
                        },
                    },
                    {
                        "StartAt": "B",
                        "States": {
                            "B": {
                                "Type": "Task",
                                "Resource": "Price",
                                "InputPath": "$[1]",
                                "End": True,
                            }
                        },
                    },
                ],
                "End": True,
            },
        },
    }
    workflows = WorkflowEngine(engine, {"Price": price})
    workflows.start(name="map", definition=definition, input=[1, 2, 3])
    workflows.run_one()
    assert workflows.describe(name="map")["status"] == "FAILED"
    assert calls == [1, 2]  # the failure stops the iterations that did not start

    broken.clear()
    broken.add(20)  # now the Parallel's second branch fails
    workflows.redrive(name="map")
    workflows.run_one()
    assert workflows.describe(name="map")["status"] == "FAILED"
    assert calls[:4] == [1, 2, 2, 3] and sorted(calls[4:]) == [10, 20]
    first_branch_runs = calls.count(10)

    broken.clear()
    workflows.redrive(name="map")
    workflows.run_one()
    done = workflows.describe(name="map")
    assert done["status"] == "SUCCEEDED", done
    assert done["output"] == [100, 200]
    assert done["redriveCount"] == 2
    assert calls.count(1) == 1 and calls.count(3) == 1  # succeeded iterations kept
    assert calls.count(10) == first_branch_runs  # the branch that succeeded was not run again
    assert calls.count(20) == 2


def test_the_api_redrives_the_tenants_own_executions(sqlite_url: str) -> None:
    pay = Flaky("paid")
    settings = Settings(database_url=sqlite_url)
    app = create_app(settings, handlers={"reserve": lambda p: "seat", "pay": pay})
    lower = json.loads(json.dumps(TWO_TASKS).replace('"Reserve"', '"reserve"'))
    lower["States"]["Pay"]["Resource"] = "pay"
    with TestClient(app, raise_server_exceptions=False) as client:
        lx = bearer(app, roles=("operations",), tenant="LX")
        other = bearer(app, roles=("operations",), tenant="BA")
        body = {"name": "api-1", "definition": lower, "input": {"id": 7}}
        assert client.post("/api/workflows/executions", json=body, headers=lx).status_code == 201
        url = "/api/workflows/executions/api-1"
        while client.get(url, headers=lx).json()["status"] == "RUNNING":
            time.sleep(0.05)
        failed = client.get(url, headers=lx).json()
        assert failed["status"] == "FAILED" and failed["redriveStatus"] == "REDRIVABLE"

        assert client.post(f"{url}/redrive", headers=other).status_code == 404
        assert client.post(f"{url}/redrive").status_code == 401
        assert client.post("/api/workflows/executions/none/redrive", headers=lx).status_code == 404
        pay.failing = False
        redriven = client.post(f"{url}/redrive", headers=lx)
        assert redriven.status_code == 200, redriven.text
        assert redriven.json()["redriveCount"] == 1
        while client.get(url, headers=lx).json()["status"] == "RUNNING":
            time.sleep(0.05)
        done = client.get(url, headers=lx).json()
        assert done["status"] == "SUCCEEDED" and done["output"]["p"] == "paid"
        refused = client.post(f"{url}/redrive", headers=lx)
        assert refused.status_code == 409
        assert "SUCCEEDED" in refused.json()["message"]


def test_the_platforms_own_executions_are_redriven_only_by_the_platform(engine: Engine) -> None:
    pay = Flaky("paid")
    workflows = WorkflowEngine(engine, {})
    workflows.add_system_machine(
        "saga", prefix="saga-", handlers={"Reserve": lambda p: "seat", "Pay": pay}
    )
    workflows.start_system(machine="saga", name="saga-1", definition=TWO_TASKS, input={})
    workflows.run_one()
    with pytest.raises(Forbidden):
        workflows.redrive(name="saga-1")
    pay.failing = False
    assert workflows.redrive_system(name="saga-1")["status"] == "RUNNING"
    workflows.run_one()
    assert workflows.describe(name="saga-1")["status"] == "SUCCEEDED"


def test_the_cli_redrives(tmp_path: Path) -> None:
    env = {**os.environ, "JETBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'wf.db'}"}
    definition = json.dumps({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "No"}}})

    def jetbridge(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "jetbridge.cli", "workflows", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    ran = jetbridge("run", "--name", "cli-1", "--definition", definition)
    assert ran.returncode == 1, ran.stderr  # a run that ends FAILED exits non-zero
    assert json.loads(ran.stdout)["status"] == "FAILED"
    redriven = jetbridge("redrive", "--name", "cli-1")
    assert redriven.returncode == 0, redriven.stderr
    shown = json.loads(redriven.stdout)
    assert shown["name"] == "cli-1" and shown["redriveCount"] == 1
    refused = jetbridge("redrive", "--name", "cli-1")
    assert refused.returncode != 0 and "RUNNING" in refused.stderr


def test_a_redriven_callback_task_hands_out_a_new_token(engine: Engine) -> None:
    delivered: list[str] = []
    definition = {
        "StartAt": "Approve",
        "States": {
            "Approve": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "AskAgent", "Payload": {"token.$": "$$.Task.Token"}},
                "End": True,
            }
        },
    }
    workflows = WorkflowEngine(
        engine, {"AskAgent": lambda payload: delivered.append(payload["token"])}, secret="s"
    )
    workflows.start(name="approval", definition=definition, input={})
    workflows.run_one()
    workflows.send_task_failure(token=delivered[0], error="Rejected", cause="no agent")
    workflows.run_one()
    assert workflows.describe(name="approval")["error"] == "Rejected"

    workflows.redrive(name="approval")
    workflows.run_one()
    assert len(delivered) == 2 and delivered[1] != delivered[0]
    with pytest.raises(Conflict):
        workflows.send_task_success(token=delivered[0], output={"late": True})
    workflows.send_task_success(token=delivered[1], output={"approved": True})
    workflows.run_one()
    done = workflows.describe(name="approval")
    assert done["status"] == "SUCCEEDED" and done["output"] == {"approved": True}


def test_a_timed_out_execution_redrives_with_its_timeout_counted_from_the_redrive(
    engine: Engine,
) -> None:
    slow = [True]

    def step(payload: Any) -> str:
        if slow[0]:
            slow[0] = False
            time.sleep(1.2)
        return "done"

    definition = {
        "TimeoutSeconds": 1,
        "StartAt": "Slow",
        "States": {
            "Slow": {"Type": "Task", "Resource": "Step", "ResultPath": "$.slow", "Next": "Then"},
            "Then": {"Type": "Task", "Resource": "Step", "ResultPath": "$.then", "End": True},
        },
    }
    calls: list[Any] = []
    workflows = WorkflowEngine(engine, {"Step": lambda p: calls.append(p) or step(p)})
    workflows.start(name="late", definition=definition, input={})
    workflows.run_one()
    timed_out = workflows.describe(name="late")
    assert timed_out["status"] == "TIMED_OUT" and timed_out["redriveStatus"] == "REDRIVABLE"
    workflows.redrive(name="late")
    workflows.run_one()
    done = workflows.describe(name="late")
    assert done["status"] == "SUCCEEDED", done
    assert done["output"] == {"slow": "done", "then": "done"}
    assert len(calls) == 2  # the Task that had finished before the timeout did not run again
