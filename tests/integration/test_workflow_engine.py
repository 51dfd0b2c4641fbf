"""Durable executions on SQLite and PostgreSQL: idempotent start, stored history, crash resume."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import Engine, update

from jetbridge.errors import Conflict
from jetbridge.storage.schema import executions
from jetbridge.workflows.engine import WorkflowEngine

DEFINITION = {
    "StartAt": "Reserve",
    "States": {
        "Reserve": {
            "Type": "Task",
            "Resource": "Reserve",
            "ResultPath": "$.reserved",
            "Next": "Pay",
        },
        "Pay": {"Type": "Task", "Resource": "Pay", "ResultPath": "$.paid", "End": True},
    },
}


class Crash(BaseException):
    """Stands for the worker process dying in the middle of a task."""


def test_start_is_idempotent_by_name_and_runs_to_the_end(engine: Engine) -> None:
    calls: list[str] = []
    workflows = WorkflowEngine(
        engine,
        {
            "Reserve": lambda p: calls.append("r") or "seat",
            "Pay": lambda p: calls.append("p") or "paid",
        },
    )
    first = workflows.start(name="booking-1", definition=DEFINITION, input={"id": 1})
    again = workflows.start(name="booking-1", definition=DEFINITION, input={"id": 1})
    assert first == again
    with pytest.raises(Conflict):
        workflows.start(name="booking-1", definition=DEFINITION, input={"id": 2})
    assert workflows.run_one() is True
    assert workflows.run_one() is False
    done = workflows.describe(name="booking-1")
    assert done["status"] == "SUCCEEDED"
    assert done["output"] == {"id": 1, "reserved": "seat", "paid": "paid"}
    kinds = [event["type"] for event in workflows.history(name="booking-1")]
    assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionSucceeded"
    assert calls == ["r", "p"]


def test_a_crashed_worker_is_resumed_without_running_finished_tasks_again(engine: Engine) -> None:
    calls: list[str] = []
    crash = [True]

    def pay(payload: Any) -> str:
        calls.append("p")
        if crash[0]:
            crash[0] = False
            raise Crash
        return "paid"

    workflows = WorkflowEngine(
        engine, {"Reserve": lambda p: calls.append("r") or "seat", "Pay": pay}, lease_seconds=60
    )
    workflows.start(name="booking-2", definition=DEFINITION, input={"id": 2})
    with pytest.raises(Crash):
        workflows.run_one()
    assert workflows.describe(name="booking-2")["status"] == "RUNNING"
    assert workflows.run_one() is False  # still leased by the dead worker
    with engine.begin() as conn:
        conn.execute(update(executions).values(lease_until=time.time() - 1))
    assert workflows.run_one() is True
    result = workflows.describe(name="booking-2")
    assert result["status"] == "SUCCEEDED"
    assert calls == ["r", "p", "p"]
    history = workflows.history(name="booking-2")
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    assert [e["type"] for e in history].count("TaskSucceeded") == 2


def test_each_task_outcome_is_stored_before_the_next_task_and_the_rest_with_the_end(
    engine: Engine,
) -> None:
    definition = {
        "StartAt": "Reserve",
        "States": {
            "Reserve": {"Type": "Task", "Resource": "Reserve", "ResultPath": "$.r", "Next": "Mark"},
            "Mark": {"Type": "Pass", "Result": 1, "ResultPath": "$.m", "Next": "Check"},
            "Check": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.m", "NumericEquals": 1, "Next": "Pay"}],
            },
            "Pay": {"Type": "Task", "Resource": "Pay", "ResultPath": "$.p", "End": True},
        },
    }
    stored_when_paying: list[dict[str, Any]] = []
    workflows = WorkflowEngine(engine, {"Reserve": lambda p: "seat"})
    workflows.handlers["Pay"] = lambda p: (
        stored_when_paying.extend(workflows.history(name="b-3")) or "paid"
    )
    workflows.start(name="b-3", definition=definition, input={})
    assert workflows.run_one() is True
    history = workflows.history(name="b-3")
    assert workflows.describe(name="b-3")["status"] == "SUCCEEDED"
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    assert history[-1]["type"] == "ExecutionSucceeded"
    # What the worker had committed when Pay ran: a prefix of the history that ends with
    # Reserve's result; the deterministic Pass and Choice events come with the next commit.
    assert stored_when_paying == history[: len(stored_when_paying)]
    assert stored_when_paying[-1]["type"] == "TaskSucceeded"
    assert "PassStateEntered" not in [e["type"] for e in stored_when_paying]


def test_a_crash_between_commits_resumes_with_the_same_history(engine: Engine) -> None:
    chain = {
        "StartAt": "P0",
        "States": {
            **{f"P{n}": {"Type": "Pass", "Result": n, "Next": f"P{n + 1}"} for n in range(5)},
            "P5": {"Type": "Task", "Resource": "Work", "End": True},
        },
    }
    crash = [True]

    def work(payload: Any) -> str:
        if crash[0]:
            crash[0] = False
            raise Crash
        return "done"

    workflows = WorkflowEngine(engine, {"Work": work}, lease_seconds=60)
    workflows.start(name="chain-1", definition=chain, input={})
    with pytest.raises(Crash):
        workflows.run_one()
    assert workflows.history(name="chain-1") == []  # only deterministic events were lost
    with engine.begin() as conn:
        conn.execute(update(executions).values(lease_until=time.time() - 1))
    assert workflows.run_one() is True
    history = workflows.history(name="chain-1")
    assert workflows.describe(name="chain-1")["status"] == "SUCCEEDED"
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    assert [e["type"] for e in history].count("PassStateEntered") == 5


def test_an_execution_whose_stored_definition_is_no_longer_valid_fails(engine: Engine) -> None:
    workflows = WorkflowEngine(engine, {"Reserve": lambda p: "seat", "Pay": lambda p: "paid"})
    workflows.start(name="old-1", definition=DEFINITION, input={})
    stored = json.dumps({**DEFINITION, "TimeoutSeconds": 0.5})  # accepted by earlier versions
    with engine.begin() as conn:
        conn.execute(update(executions).values(definition=stored))
    assert workflows.run_one() is True
    described = workflows.describe(name="old-1")
    assert described["status"] == "FAILED"
    assert described["error"] == "States.Runtime"
    assert "TimeoutSeconds" in described["cause"]
    assert workflows.run_one() is False


def test_stop_aborts_and_failures_are_recorded(engine: Engine) -> None:
    def fail(payload: Any) -> Any:
        raise ValueError("card declined")

    workflows = WorkflowEngine(engine, {"Reserve": fail, "Pay": lambda p: p})
    workflows.start(name="will-fail", definition=DEFINITION, input={})
    workflows.run_one()
    failed = workflows.describe(name="will-fail")
    assert (failed["status"], failed["error"]) == ("FAILED", "ValueError")
    workflows.start(name="will-stop", definition=DEFINITION, input={})
    assert workflows.stop(name="will-stop")["status"] == "ABORTED"
    with pytest.raises(Conflict):
        workflows.stop(name="will-stop")
    assert {e["name"] for e in workflows.list()} == {"will-fail", "will-stop"}


def test_wait_for_task_token_pauses_until_answered(engine: Engine) -> None:
    delivered: list[str] = []
    definition = {
        "StartAt": "Approve",
        "States": {
            "Approve": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {
                    "FunctionName": "AskAgent",
                    "Payload": {"token.$": "$$.Task.Token", "booking.$": "$.booking"},
                },
                "ResultPath": "$.approval",
                "Next": "Done",
            },
            "Done": {"Type": "Pass", "End": True},
        },
    }
    workflows = WorkflowEngine(
        engine, {"AskAgent": lambda payload: delivered.append(payload["token"])}, secret="s"
    )
    workflows.start(name="needs-approval", definition=definition, input={"booking": "b1"})
    assert workflows.run_one() is True
    assert workflows.describe(name="needs-approval")["status"] == "RUNNING"
    assert workflows.run_one() is False  # waiting: nobody may claim it
    (token,) = delivered
    with pytest.raises(Exception, match="not a token"):
        workflows.send_task_success(
            token=token[:-1] + ("0" if token[-1] != "0" else "1"), output={}
        )
    workflows.send_task_success(token=token, output={"approved": True})
    with pytest.raises(Conflict):
        workflows.send_task_success(token=token, output={"approved": True})
    assert workflows.run_one() is True
    done = workflows.describe(name="needs-approval")
    assert done["status"] == "SUCCEEDED"
    # The callback's result is what SendTaskSuccess sent, not a Lambda invocation's response.
    assert done["output"] == {"booking": "b1", "approval": {"approved": True}}
    history = workflows.history(name="needs-approval")
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    assert "TaskSubmitted" in [e["type"] for e in history]
    assert delivered == [token]


def test_a_task_failure_answer_fails_the_task(engine: Engine) -> None:
    tokens: list[str] = []
    definition = {
        "StartAt": "A",
        "States": {
            "A": {
                "Type": "Task",
                "Resource": "Agent.waitForTaskToken",
                "Parameters": {"t.$": "$$.Task.Token"},
                "End": True,
            }
        },
    }
    workflows = WorkflowEngine(engine, {"Agent": lambda p: tokens.append(p["t"])})
    workflows.start(name="refused", definition=definition, input={})
    workflows.run_one()
    workflows.send_task_failure(token=tokens[0], error="Refused", cause="no seats")
    workflows.run_one()
    failed = workflows.describe(name="refused")
    assert (failed["status"], failed["error"], failed["cause"]) == ("FAILED", "Refused", "no seats")


def test_http_tasks_call_real_endpoints() -> None:
    from jetbridge.config import Settings
    from jetbridge.workflows import execute
    from jetbridge.workflows.asl.tasks import HTTP_RESOURCE
    from jetbridge.workflows.http_task import http_invoke
    from support.webhook import webhook_receiver

    definition = {
        "StartAt": "Notify",
        "States": {
            "Notify": {
                "Type": "Task",
                "Resource": "arn:aws:states:::http:invoke",
                "Parameters": {
                    "ApiEndpoint.$": "$.url",
                    "Method": "POST",
                    "Headers": {"X-Source": "jetbridge"},
                    "RequestBody": {"pnr.$": "$.pnr"},
                },
                "ResultSelector": {"status.$": "$.StatusCode"},
                "Catch": [
                    {
                        "ErrorEquals": ["States.Http.StatusCode.500"],
                        "ResultPath": "$.failed",
                        "Next": "Failed",
                    }
                ],
                "End": True,
            },
            "Failed": {"Type": "Pass", "End": True},
        },
    }
    # The platform registers the HTTP task with its outbound policy; the tests allow loopback.
    handlers = {HTTP_RESOURCE: http_invoke(Settings().outbound_policy())}
    with webhook_receiver() as receiver:
        ok = execute(definition, {"url": receiver.url, "pnr": "ABC234"}, handlers)
        receiver.statuses = [500]
        failed = execute(definition, {"url": receiver.url, "pnr": "XYZ789"}, handlers)
    assert ok.output == {"status": 200}
    headers, body = receiver.requests[0]
    assert headers["x-source"] == "jetbridge"
    assert body == b'{"pnr":"ABC234"}'
    assert failed.output["failed"]["Error"] == "States.Http.StatusCode.500"


def test_a_crash_in_a_parallel_branch_resumes_without_running_finished_branches_again(
    engine: Engine,
) -> None:
    compensation = {
        "StartAt": "RefundAndCancel",
        "States": {
            "RefundAndCancel": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "StartAt": name,
                        "States": {name: {"Type": "Task", "Resource": name, "End": True}},
                    }
                    for name in ("Refund", "Cancel")
                ],
                "End": True,
            }
        },
    }
    calls: list[str] = []
    workflows = WorkflowEngine(engine, {}, lease_seconds=60)

    def refund(payload: Any) -> str:
        calls.append("refund")
        return "refunded"

    def cancel(payload: Any) -> str:
        calls.append("cancel")
        if calls.count("cancel") == 1:
            # Die once the other branch's outcome is stored: that branch must not run again.
            deadline = time.monotonic() + 10
            while "TaskSucceeded" not in [e["type"] for e in workflows.history(name="comp-1")]:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            raise Crash
        return "cancelled"

    workflows.handlers.update({"Refund": refund, "Cancel": cancel})
    workflows.start(name="comp-1", definition=compensation, input={"booking_id": "b1"})
    with pytest.raises(Crash):
        workflows.run_one()
    with engine.begin() as conn:
        conn.execute(update(executions).values(lease_until=time.time() - 1))
    assert workflows.run_one() is True
    done = workflows.describe(name="comp-1")
    assert (done["status"], done["output"]) == ("SUCCEEDED", ["refunded", "cancelled"])
    assert sorted(calls) == ["cancel", "cancel", "refund"]
    history = workflows.history(name="comp-1")
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    kinds = [e["type"] for e in history]
    assert kinds.count("TaskSucceeded") == 2 and kinds.count("ParallelStateStarted") == 1


def test_a_parked_execution_resumed_past_its_timeout_times_out_at_the_end_of_its_history(
    engine: Engine,
) -> None:
    definition = {
        "TimeoutSeconds": 1,
        "StartAt": "W",
        "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": True}},
    }
    workflows = WorkflowEngine(engine, {}, lease_seconds=60)
    workflows.start(name="parked-late", definition=definition, input={})
    give_up = time.monotonic() + 60
    while workflows.describe(name="parked-late")["status"] == "RUNNING":
        assert time.monotonic() < give_up
        if not workflows.run_one():
            time.sleep(0.05)
    ended = workflows.describe(name="parked-late")
    assert (ended["status"], ended["error"]) == ("TIMED_OUT", "States.Timeout")
    kinds = [event["type"] for event in workflows.history(name="parked-late")]
    assert kinds == ["ExecutionStarted", "WaitStateEntered", "ExecutionTimedOut"]
    assert workflows.redrive(name="parked-late")["status"] == "RUNNING"
