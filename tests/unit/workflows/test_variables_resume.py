"""Workflow variables across a resumed execution: the replay restores what was assigned."""

from __future__ import annotations

from typing import Any

from jetbridge.workflows import execute

MACHINE = {
    "StartAt": "Pick",
    "States": {
        "Pick": {"Type": "Pass", "Assign": {"id.$": "States.UUID()"}, "Next": "Work"},
        "Work": {"Type": "Task", "Resource": "work", "ResultPath": None, "Next": "Show"},
        "Show": {"Type": "Pass", "Parameters": {"id.$": "$id", "seen.$": "$seen"}, "End": True},
    },
}


def test_a_resumed_execution_keeps_the_variables_it_assigned_before() -> None:
    calls: list[Any] = []

    def work(payload: Any) -> Any:
        calls.append(payload)
        return {}

    machine = {**MACHINE, "States": {**MACHINE["States"]}}
    machine["States"]["Work"] = {**MACHINE["States"]["Work"], "Assign": {"seen": "yes"}}
    first = execute(machine, {}, {"work": work})
    assert first.status == "SUCCEEDED", first.cause
    exited = next(e for e in first.history if e["type"] == "TaskStateExited")
    assert exited["stateExitedEventDetails"]["assignedVariables"] == {"seen": '"yes"'}
    # The process stopped right after the task finished: the rest runs on resume.
    cut = first.history[: first.history.index(exited) + 1]
    resumed = execute(machine, {}, {"work": work}, previous=cut)
    assert resumed.status == "SUCCEEDED", resumed.cause
    assert resumed.output == first.output  # the same UUID, not a new one
    assert len(calls) == 1  # the finished task did not run again


def test_variables_assigned_in_the_history_stand_over_a_fresh_evaluation() -> None:
    first = execute(MACHINE, {}, {"work": lambda payload: {}})
    picked = next(e for e in first.history if e["type"] == "PassStateExited")
    cut = first.history[: first.history.index(picked) + 1]
    again = execute(
        {
            **MACHINE,
            "States": {
                **MACHINE["States"],
                "Show": {"Type": "Pass", "Parameters": {"id.$": "$id"}, "End": True},
            },
        },
        {},
        {"work": lambda payload: {}},
        previous=cut,
    )
    recorded = picked["stateExitedEventDetails"]["assignedVariables"]["id"]
    assert again.output == {"id": recorded.strip('"')}
