"""JSONata state machines in the durable engine, on SQLite and PostgreSQL: stored history,
variables kept across a crashed worker, the machine's name in the context object."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import Engine, update

from jetbridge.storage.schema import executions
from jetbridge.workflows.engine import WorkflowEngine

DEFINITION = {
    "QueryLanguage": "JSONata",
    "StartAt": "Quote",
    "States": {
        "Quote": {
            "Type": "Task",
            "Resource": "Quote",
            "Arguments": {"fare": "{% $states.input.fare %}"},
            "Assign": {"quote": "{% $states.result %}", "ref": "{% $uuid() %}"},
            "Output": "{% $states.input %}",
            "Next": "Pay",
        },
        "Pay": {
            "Type": "Task",
            "Resource": "Pay",
            "Arguments": {"amount": "{% $quote.amount %}", "ref": "{% $ref %}"},
            "Output": {
                "paid": "{% $states.result %}",
                "ref": "{% $ref %}",
                "machine": "{% $states.context.StateMachine.Name %}",
            },
            "End": True,
        },
    },
}


class Crash(BaseException):
    """Stands for the worker process dying in the middle of a task."""


def test_a_resumed_jsonata_execution_keeps_its_variables_and_runs_no_task_twice(
    engine: Engine,
) -> None:
    calls: list[str] = []
    crash = [True]

    def quote(payload: Any) -> dict[str, Any]:
        calls.append("quote")
        return {"amount": payload["fare"] * 2}

    def pay(payload: Any) -> Any:
        calls.append("pay")
        if crash[0]:
            crash[0] = False
            raise Crash
        return payload

    workflows = WorkflowEngine(engine, {"Quote": quote, "Pay": pay}, lease_seconds=60)
    workflows.start(name="jsonata-1", definition=DEFINITION, input={"fare": 150})
    with pytest.raises(Crash):
        workflows.run_one()
    with engine.begin() as conn:
        conn.execute(update(executions).values(lease_until=time.time() - 1))
    assert workflows.run_one() is True
    done = workflows.describe(name="jsonata-1")
    assert done["status"] == "SUCCEEDED", done
    ref = done["output"]["ref"]
    # The variable assigned before the crash (a UUID) is the one the resumed run used.
    assert done["output"] == {
        "paid": {"amount": 300, "ref": ref},
        "ref": ref,
        "machine": "machine",
    }
    assert calls == ["quote", "pay", "pay"]
    history = workflows.history(name="jsonata-1")
    assert [e["type"] for e in history].count("TaskSucceeded") == 2


def test_a_jsonata_evaluation_error_fails_the_stored_execution_with_aws_words(
    engine: Engine,
) -> None:
    workflows = WorkflowEngine(engine, {"Quote": lambda payload: payload, "Pay": lambda p: p})
    workflows.start(name="jsonata-2", definition=DEFINITION, input={})
    assert workflows.run_one() is True
    done = workflows.describe(name="jsonata-2")
    assert done["status"] == "FAILED"
    assert done["error"] == "States.QueryEvaluationError"
    assert done["cause"] == (
        "An error occurred while executing the state 'Quote' (entered at the event id #2). "
        "The JSONata expression '$states.input.fare' specified for the field "
        "'Arguments/fare' returned nothing (undefined)."
    )
