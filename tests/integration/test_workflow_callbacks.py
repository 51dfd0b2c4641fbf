"""Durable callback tasks on SQLite and PostgreSQL: concurrent Maps that wait for task tokens,
SendTaskHeartbeat, HeartbeatSeconds and TimeoutSeconds that hold across restarts."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from jetbridge.errors import Conflict, InvalidRequest, NotFound
from jetbridge.storage.schema import executions
from jetbridge.workflows.engine import TaskTimedOut, WorkflowEngine
from support.auth import as_operator


class Crash(BaseException):
    """Stands for the worker process dying in the middle of a task."""


def fan_out(processor: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {"n.$": "$$.Map.Item.Value"},
                "ItemProcessor": {"StartAt": "Work", "States": {"Work": processor}},
                "End": True,
                **fields,
            }
        },
    }


def lapse_leases(engine: Engine) -> None:
    """What time does to the lease of a worker that died."""
    with engine.begin() as conn:
        conn.execute(update(executions).values(lease_until=time.time() - 1))


def test_a_concurrent_map_resumes_without_running_finished_iterations_again(
    engine: Engine,
) -> None:
    lock = threading.Lock()
    calls: Counter[int] = Counter()
    running = [0, 0]  # now, most
    crash = [True]

    def work(payload: Any) -> Any:
        n = payload["n"]
        with lock:
            calls[n] += 1
            running[0] += 1
            running[1] = max(running[1], running[0])
        try:
            time.sleep(0.05 * (n % 3 + 1))
            if n == 4 and crash[0]:
                crash[0] = False
                raise Crash
            return {"item": n}
        finally:
            with lock:
                running[0] -= 1

    definition = fan_out({"Type": "Task", "Resource": "Work", "End": True}, MaxConcurrency=3)
    workflows = WorkflowEngine(engine, {"Work": work}, lease_seconds=60)
    workflows.start(name="fan-out", definition=definition, input={"items": list(range(8))})
    with pytest.raises(Crash):
        workflows.run_one()
    finished = {
        json.loads(e["taskSucceededEventDetails"]["output"])["item"]
        for e in workflows.history(name="fan-out")
        if e["type"] == "TaskSucceeded"
    }
    assert finished and 4 not in finished
    assert workflows.run_one() is False  # still leased by the dead worker
    lapse_leases(engine)
    assert workflows.run_one() is True
    done = workflows.describe(name="fan-out")
    assert done["status"] == "SUCCEEDED", done
    assert done["output"] == [{"item": n} for n in range(8)]
    assert all(calls[n] == 1 for n in finished), (calls, finished)
    assert calls[4] == 2 and set(calls) == set(range(8))
    assert 1 < running[1] <= 3  # concurrent, never beyond MaxConcurrency
    history = workflows.history(name="fan-out")
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    kinds = Counter(e["type"] for e in history)
    assert kinds["MapStateStarted"] == 1
    assert kinds["MapIterationStarted"] == kinds["MapIterationSucceeded"] == 8


ASK = {
    "Type": "Task",
    "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
    "Parameters": {
        "FunctionName": "Ask",
        "Payload": {"n.$": "$.n", "token.$": "$$.Task.Token"},
    },
    "End": True,  # the result is the answer itself: no Payload to pick out
}


def test_iterations_waiting_for_task_tokens_hold_their_slots_and_resume_in_order(
    engine: Engine,
) -> None:
    delivered: dict[int, list[str]] = {}
    workflows = WorkflowEngine(
        engine,
        {"Ask": lambda p: delivered.setdefault(p["n"], []).append(p["token"])},
        secret="s",
    )
    definition = fan_out(ASK, MaxConcurrency=2)
    workflows.start(name="approvals", definition=definition, input={"items": [10, 11, 12]})
    assert workflows.run_one() is True
    assert sorted(delivered) == [10, 11]  # the third waits for a free slot
    assert workflows.describe(name="approvals")["status"] == "RUNNING"
    assert workflows.run_one() is False  # parked: nobody holds it
    workflows.send_task_success(token=delivered[11][0], output={"ok": 11})
    assert workflows.run_one() is True
    assert sorted(delivered) == [10, 11, 12]
    workflows.send_task_success(token=delivered[12][0], output={"ok": 12})
    workflows.send_task_success(token=delivered[10][0], output={"ok": 10})
    assert workflows.run_one() is True
    done = workflows.describe(name="approvals")
    assert done["status"] == "SUCCEEDED", done
    assert done["output"] == [{"ok": 10}, {"ok": 11}, {"ok": 12}]
    assert all(len(tokens) == 1 for tokens in delivered.values())  # never handed out twice
    with pytest.raises(Conflict):
        workflows.send_task_success(token=delivered[10][0], output={})


def test_parallel_branches_wait_for_their_task_tokens_side_by_side(engine: Engine) -> None:
    delivered: dict[int, str] = {}
    workflows = WorkflowEngine(
        engine, {"Ask": lambda p: delivered.setdefault(p["n"], p["token"])}, secret="s"
    )
    branches = [
        {
            "StartAt": "Ask",
            "States": {
                "Ask": {
                    **ASK,
                    "Parameters": {
                        "FunctionName": "Ask",
                        "Payload": {"n": n, "token.$": "$$.Task.Token"},
                    },
                }
            },
        }
        for n in range(2)
    ]
    definition = {
        "StartAt": "Both",
        "States": {"Both": {"Type": "Parallel", "Branches": branches, "End": True}},
    }
    workflows.start(name="both", definition=definition, input={})
    assert workflows.run_one() is True
    assert sorted(delivered) == [0, 1]  # each branch handed out its token before any answer
    assert workflows.run_one() is False  # parked
    workflows.send_task_success(token=delivered[1], output={"ok": 1})
    assert workflows.run_one() is True
    assert workflows.describe(name="both")["status"] == "RUNNING"
    workflows.send_task_success(token=delivered[0], output={"ok": 0})
    assert workflows.run_one() is True
    done = workflows.describe(name="both")
    assert (done["status"], done["output"]) == ("SUCCEEDED", [{"ok": 0}, {"ok": 1}])


def callback(**fields: Any) -> dict[str, Any]:
    return {
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": "Ask.waitForTaskToken",
                "Parameters": {"token.$": "$$.Task.Token"},
                "ResultPath": "$.answer",
                "End": True,
                **fields,
            }
        },
    }


def test_heartbeats_keep_a_callback_task_alive_past_heartbeat_seconds(engine: Engine) -> None:
    """Heartbeats a few tenths of a second apart keep the task alive for half as long again as
    its HeartbeatSeconds (each one restarts the clock); then the answer is taken. The gaps are
    far shorter than HeartbeatSeconds, so a slow commit on a loaded machine does not lose it."""
    tokens: list[str] = []
    workflows = WorkflowEngine(engine, {"Ask": lambda p: tokens.append(p["token"])}, secret="s")
    workflows.start(
        name="slow-agent", definition=callback(HeartbeatSeconds=3, TimeoutSeconds=60), input={}
    )
    workflows.run_one()
    issued = time.monotonic()  # the token was issued before this
    beats = 0
    while time.monotonic() - issued < 4.5:
        time.sleep(0.3)
        workflows.send_task_heartbeat(token=tokens[0])
        beats += 1
    workflows.send_task_success(token=tokens[0], output="approved")
    assert workflows.run_one() is True
    done = workflows.describe(name="slow-agent")
    assert (done["status"], done["output"]) == ("SUCCEEDED", {"answer": "approved"})
    assert beats >= 2 and len(tokens) == 1
    history = [e["type"] for e in workflows.history(name="slow-agent")]
    assert "TaskTimedOut" not in history


def test_a_silent_callback_fails_with_heartbeat_timeout_and_late_answers_are_refused(
    engine: Engine,
) -> None:
    tokens: list[str] = []
    definition = callback(
        HeartbeatSeconds=1,
        Catch=[
            {"ErrorEquals": ["States.HeartbeatTimeout"], "ResultPath": "$.error", "Next": "Gave up"}
        ],
    )
    definition["States"]["Ask"].pop("End")
    definition["States"]["Ask"]["Next"] = "Gave up"
    definition["States"]["Gave up"] = {"Type": "Pass", "End": True}
    first = WorkflowEngine(engine, {"Ask": lambda p: tokens.append(p["token"])}, secret="s")
    first.start(name="silent", definition=definition, input={})
    first.run_one()
    time.sleep(1.2)
    restarted = WorkflowEngine(engine, {"Ask": lambda p: tokens.append(p["token"])}, secret="s")
    with pytest.raises(TaskTimedOut, match=r"States\.HeartbeatTimeout"):
        restarted.send_task_success(token=tokens[0], output="too late")
    with pytest.raises(TaskTimedOut):
        restarted.send_task_heartbeat(token=tokens[0])
    assert restarted.run_one() is True
    done = restarted.describe(name="silent")
    assert done["status"] == "SUCCEEDED"
    assert done["output"]["error"]["Error"] == "States.HeartbeatTimeout"
    timed_out = [e for e in restarted.history(name="silent") if e["type"] == "TaskTimedOut"]
    assert timed_out[0]["taskTimedOutEventDetails"]["error"] == "States.HeartbeatTimeout"
    assert len(tokens) == 1


def test_timeout_seconds_of_a_callback_holds_across_a_restart(engine: Engine) -> None:
    tokens: list[str] = []
    first = WorkflowEngine(engine, {"Ask": lambda p: tokens.append(p["token"])}, secret="s")
    first.start(name="deadline", definition=callback(TimeoutSeconds=3), input={})
    began = time.time()
    first.run_one()
    restarted = WorkflowEngine(engine, {"Ask": lambda p: tokens.append(p["token"])}, secret="s")
    assert restarted.run_one() is False  # parked until the deadline
    while time.time() < began + 30 and not restarted.run_one():
        time.sleep(0.05)
    assert time.time() - began >= 3
    done = restarted.describe(name="deadline")
    assert (done["status"], done["error"]) == ("FAILED", "States.Timeout")
    with pytest.raises(Conflict, match="not running"):
        restarted.send_task_success(token=tokens[0], output="too late")
    assert len(tokens) == 1


def test_an_unanswered_callback_without_timeout_waits_as_long_as_aws_allows(
    engine: Engine,
) -> None:
    workflows = WorkflowEngine(engine, {"Ask": lambda p: None}, secret="s")
    workflows.start(name="patient", definition=callback(), input={})
    workflows.run_one()
    with engine.connect() as conn:
        wake_at = conn.execute(select(executions.c.lease_until)).scalar()
    assert wake_at is not None and wake_at > time.time() + 99_999_000
    scheduled = next(e for e in workflows.history(name="patient") if e["type"] == "TaskScheduled")
    assert scheduled["taskScheduledEventDetails"]["timeoutInSeconds"] == 99_999_999


def test_a_heartbeat_timeout_is_retried_with_a_new_token(engine: Engine) -> None:
    tokens: list[str] = []
    definition = callback(
        HeartbeatSeconds=1,
        Retry=[{"ErrorEquals": ["States.HeartbeatTimeout"], "IntervalSeconds": 0}],
    )
    workflows = WorkflowEngine(engine, {"Ask": lambda p: tokens.append(p["token"])}, secret="s")
    workflows.start(name="retried", definition=definition, input={})
    workflows.run_one()
    time.sleep(1.1)
    assert workflows.run_one() is True  # the timer fired: a second attempt, a second token
    assert len(tokens) == 2 and tokens[0] != tokens[1]
    workflows.send_task_success(token=tokens[1], output="second")
    workflows.run_one()
    assert workflows.describe(name="retried")["output"] == {"answer": "second"}


def test_forged_and_unknown_task_tokens_are_refused_clearly(engine: Engine) -> None:
    tokens: list[str] = []
    workflows = WorkflowEngine(engine, {"Ask": lambda p: tokens.append(p["token"])}, secret="s")
    workflows.start(name="real", definition=callback(), input={})
    workflows.run_one()
    (token,) = tokens
    forged = token[:-1] + ("0" if token[-1] != "0" else "1")
    with pytest.raises(InvalidRequest, match="task_token: not a token this engine issued"):
        workflows.send_task_heartbeat(token=forged)
    with pytest.raises(InvalidRequest, match="task_token"):
        workflows.send_task_heartbeat(token="no pipes here")
    other_engine = WorkflowEngine(engine, {}, secret="another secret")
    with pytest.raises(InvalidRequest):
        other_engine.send_task_heartbeat(token=token)
    never_issued = workflows.tokens.sign("real", "9.9")
    with pytest.raises(NotFound, match="no task of execution 'real' waits for it"):
        workflows.send_task_heartbeat(token=never_issued)
    with pytest.raises(NotFound, match="execution 'ghost' does not exist"):
        workflows.send_task_heartbeat(token=workflows.tokens.sign("ghost", "3"))
    workflows.send_task_heartbeat(token=token)
    workflows.send_task_failure(token=token, error="Refused", cause="no")
    with pytest.raises(Conflict, match="answered already"):
        workflows.send_task_heartbeat(token=token)
    workflows.run_one()
    assert workflows.describe(name="real")["error"] == "Refused"


def test_callback_answers_and_heartbeats_over_http(sqlite_url: str) -> None:
    from fastapi.testclient import TestClient

    from jetbridge.app import create_app
    from jetbridge.config import Settings

    app = create_app(Settings(database_url=sqlite_url, delivery_poll_seconds=0.05))
    tokens: list[str] = []
    with TestClient(app) as client:
        as_operator(client)
        app.state.platform.workflows.handlers["Ask"] = lambda p: tokens.append(p["token"])
        started = client.post(
            "/api/workflows/executions",
            json={"name": "over-http", "definition": callback(HeartbeatSeconds=5), "input": {}},
        )
        assert started.status_code == 201, started.text
        deadline = time.time() + 15
        while not tokens and time.time() < deadline:
            time.sleep(0.05)
        forged = client.post("/api/workflows/tasks/heartbeat", json={"task_token": "x|1|y"})
        assert forged.status_code == 400
        assert "task_token" in forged.json()["message"]
        beat = client.post("/api/workflows/tasks/heartbeat", json={"task_token": tokens[0]})
        assert beat.status_code == 204, beat.text
        answer = {"task_token": tokens[0], "output": {"seat": "12A"}}
        assert client.post("/api/workflows/tasks/success", json=answer).status_code == 204
        again = client.post("/api/workflows/tasks/heartbeat", json={"task_token": tokens[0]})
        assert again.status_code == 409
        done: dict[str, Any] = {}
        while time.time() < deadline:
            done = client.get("/api/workflows/executions/over-http").json()
            if done["status"] != "RUNNING":
                break
            time.sleep(0.05)
        assert (done["status"], done["output"]) == ("SUCCEEDED", {"answer": {"seat": "12A"}})


def test_an_execution_parked_by_an_earlier_version_resumes_when_answered(engine: Engine) -> None:
    """Earlier versions parked with a lease of 1e18, kept no token row, and numbered tokens."""
    from sqlalchemy import delete

    from jetbridge.storage.schema import task_tokens

    workflows = WorkflowEngine(engine, {"Ask": lambda p: None}, secret="s")
    workflows.start(name="old", definition=callback(), input={})
    workflows.run_one()
    with engine.begin() as conn:
        conn.execute(delete(task_tokens))
        conn.execute(update(executions).values(lease_until=1e18, parked=False))
    old_token = workflows.tokens.sign("old", "1")
    workflows.send_task_success(token=old_token, output="yes")
    assert workflows.run_one() is True
    done = workflows.describe(name="old")
    assert (done["status"], done["output"]) == ("SUCCEEDED", {"answer": "yes"})
    history = workflows.history(name="old")
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
