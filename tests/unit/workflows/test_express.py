"""Express workflows: what they refuse before anything runs, and their answer."""

from __future__ import annotations

from typing import Any

import pytest

from jetbridge.workflows import InvalidDefinition
from jetbridge.workflows.express import check_express, run_express


def task(resource: str) -> dict[str, Any]:
    return {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": resource, "End": True}}}


@pytest.mark.parametrize(
    ("definition", "named"),
    [
        (task("arn:aws:states:::lambda:invoke.waitForTaskToken"), ".waitForTaskToken"),
        (task("arn:aws:states:::states:startExecution.sync"), "(.sync)"),
        (task("arn:aws:states:::states:startExecution.sync:2"), "(.sync:2)"),
        (
            {
                "StartAt": "P",
                "States": {
                    "P": {
                        "Type": "Parallel",
                        "Branches": [task("Ask.waitForTaskToken")],
                        "End": True,
                    }
                },
            },
            "States.P.Branches[0].States.T.Resource",
        ),
        (
            {
                "StartAt": "M",
                "States": {
                    "M": {"Type": "Map", "ItemProcessor": task("a.sync"), "End": True},
                },
            },
            "States.M.ItemProcessor.States.T.Resource",
        ),
        ({**task("echo"), "TimeoutSeconds": 301}, "at most 300 seconds"),
    ],
)
def test_an_express_workflow_refuses_what_step_functions_refuses(
    definition: dict[str, Any], named: str
) -> None:
    with pytest.raises(InvalidDefinition) as refused:
        check_express(definition)
    assert named in str(refused.value)
    with pytest.raises(InvalidDefinition):
        run_express(definition, {}, {"echo": lambda payload: payload})


def test_an_express_execution_answers_with_its_end() -> None:
    answer = run_express(task("echo"), {"a": 1}, {"echo": lambda p: p}, name="x1", machine="m")
    assert answer["status"] == "SUCCEEDED"
    assert answer["output"] == {"a": 1}
    assert answer["type"] == "EXPRESS"
    assert answer["executionArn"] == "arn:jetbridge:states:express:m:x1"
    assert answer["startDate"] <= answer["stopDate"]
    assert "history" not in answer


def test_a_failed_express_execution_answers_with_error_and_cause() -> None:
    failing = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "No", "Cause": "why"}}}
    answer = run_express(failing, {}, {})
    assert (answer["status"], answer["error"], answer["cause"]) == ("FAILED", "No", "why")
    assert "output" not in answer


def test_an_express_execution_runs_at_most_five_minutes() -> None:
    definition = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 600, "End": True}}}
    answer = run_express({**definition, "TimeoutSeconds": 1}, {}, {})
    assert (answer["status"], answer["error"]) == ("TIMED_OUT", "States.Timeout")
