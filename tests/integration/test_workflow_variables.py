"""Workflow variables in durable executions: a worker that dies after a variable's assignment
was stored is resumed with the value it assigned, read back from the stored history."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import Engine, update

from jetbridge.storage.schema import executions
from jetbridge.workflows.engine import WorkflowEngine

DEFINITION = {
    "StartAt": "Pick",
    "States": {
        "Pick": {"Type": "Pass", "Assign": {"ref.$": "States.UUID()", "n": 1}, "Next": "Note"},
        "Note": {"Type": "Task", "Resource": "Note", "ResultPath": None, "Next": "Work"},
        "Work": {
            "Type": "Task",
            "Resource": "Work",
            "Assign": {"n.$": "States.MathAdd($n, 1)"},
            "ResultPath": None,
            "Next": "Show",
        },
        "Show": {"Type": "Pass", "Parameters": {"ref.$": "$ref", "n.$": "$n"}, "End": True},
    },
}


class Crash(BaseException):
    """Stands for the worker process dying in the middle of a task."""


def test_a_resumed_execution_reads_the_variables_assigned_before_the_crash(
    engine: Engine,
) -> None:
    crash = [True]
    calls: list[Any] = []

    def work(payload: Any) -> Any:
        calls.append(payload)
        if crash[0]:
            crash[0] = False
            raise Crash
        return {}

    noted: list[Any] = []
    handlers = {"Note": lambda payload: noted.append(payload) or {}, "Work": work}
    workflows = WorkflowEngine(engine, handlers, lease_seconds=60)
    workflows.start(name="vars-1", definition=DEFINITION, input={})
    with pytest.raises(Crash):
        workflows.run_one()
    picked = next(e for e in workflows.history(name="vars-1") if e["type"] == "PassStateExited")
    assigned = picked["stateExitedEventDetails"]["assignedVariables"]
    with engine.begin() as conn:
        conn.execute(update(executions).values(lease_until=time.time() - 1))
    assert workflows.run_one() is True
    result = workflows.describe(name="vars-1")
    assert result["status"] == "SUCCEEDED", result
    output = result["output"]
    output = json.loads(output) if isinstance(output, str) else output
    assert output == {"ref": json.loads(assigned["ref"]), "n": 2}
    assert len(calls) == 2
    assert len(noted) == 1  # stored before the crash: not called again
