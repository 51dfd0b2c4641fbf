"""JSONata states beyond the conformance corpus: hostile expressions and definitions, side by
side evaluation in Map iterations, the history of a JSONata execution, the context object."""

from __future__ import annotations

import time
from typing import Any

import pytest

from jetbridge.workflows import InvalidDefinition, execute

PROCESSOR = {"ItemProcessor": {"StartAt": "E", "States": {"E": {"Type": "Pass", "End": True}}}}


def machine(*states: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"QueryLanguage": "JSONata", "StartAt": states[0][0], "States": dict(states)}


def output(expression: Any) -> dict[str, Any]:
    return machine(("S", {"Type": "Pass", "Output": expression, "End": True}))


@pytest.mark.parametrize(
    "expression",
    [
        "{% ($f := function($n){ $f($n + 1) }; $f(0)) %}",  # endless recursion
        "{% ($f := function($n){ $n > 0 ? $f($n - 1) + 1 : 0 }; $f(100000)) %}",  # too deep
        "{% [1..100000000] %}",  # a range JSONata refuses to allocate
        "{% $count([1..999999].($string($) & $string($) & $string($))) > 0 and $f() %}",
        "{% $parse('{\"a\": ') %}",
        "{% $hash('x', 'CRC32') %}",
        "{% $range(0, 1000000, 1) %}",
        "{% $partition([1], 0) %}",
        "{% $error('raised by the expression') %}",
        "{% function($x){ $x } %}",
    ],
)
def test_a_hostile_or_failing_expression_fails_the_state_quickly(expression: str) -> None:
    began = time.monotonic()
    result = execute(output(expression), {})
    assert (result.status, result.error) == ("FAILED", "States.QueryEvaluationError")
    assert "specified for the field 'Output'" in (result.cause or "")
    assert time.monotonic() - began < 30


def test_a_result_too_large_to_pass_on_fails_before_it_is_copied() -> None:
    began = time.monotonic()
    result = execute(output("{% [1..2000000] %}"), {})
    assert (result.status, result.error) == ("FAILED", "States.DataLimitExceeded")
    assert "over the 256 KiB payload limit" in (result.cause or "")
    assert time.monotonic() - began < 30


@pytest.mark.parametrize(
    ("definition", "where"),
    [
        (output("{% ( %}"), "States.S.Output"),
        (output({"deep": [{"x": "{% $states.input.[ %}"}]}), "States.S.Output.deep[0].x"),
        (output("{% $eval('1') %}"), "$eval"),
        (output("{% $eval ('1') %}"), "$eval"),
        (output("{%%}"), "empty JSONata expression"),
        (
            machine(("S", {"Type": "Pass", "Assign": {"1x": 1}, "End": True})),
            "States.S.Assign.1x",
        ),
        (machine(("S", {"Type": "Pass", "Assign": ["x"], "End": True})), "States.S.Assign"),
        (
            machine(("M", {"Type": "Map", "Items": {"not": "array"}, **PROCESSOR, "End": True})),
            "States.M.Items",
        ),
        (
            machine(("C", {"Type": "Choice", "Choices": [{"Condition": "yes", "Next": "C"}]})),
            "Choices[0].Condition",
        ),
        (machine(("F", {"Type": "Fail", "Error": 5})), "States.F.Error"),
        ({**output(1), "QueryLanguage": 5}, "QueryLanguage"),
    ],
)
def test_bad_definitions_are_refused_naming_the_place(definition: Any, where: str) -> None:
    with pytest.raises(InvalidDefinition) as refused:
        execute(definition, {})
    assert where in str(refused.value)


def test_map_iterations_evaluate_the_same_expressions_side_by_side() -> None:
    processor = {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": "slow",
                "Arguments": {"n": "{% $states.input %}"},
                "Output": "{% $states.result.n * 2 %}",
                "End": True,
            }
        },
    }
    definition = machine(
        ("M", {"Type": "Map", "MaxConcurrency": 8, "ItemProcessor": processor, "End": True})
    )

    def slow(payload: Any) -> Any:
        time.sleep(0.01)
        return payload

    result = execute(definition, list(range(40)), {"slow": slow})
    assert result.status == "SUCCEEDED"
    assert result.output == [2 * n for n in range(40)]


def test_a_jsonata_execution_records_its_history_and_assignments() -> None:
    definition = machine(
        ("A", {"Type": "Pass", "Assign": {"id": "{% $states.input.id %}"}, "Next": "T"}),
        ("T", {"Type": "Task", "Resource": "echo", "Arguments": {"id": "{% $id %}"}, "End": True}),
    )
    result = execute(definition, {"id": 7}, {"echo": lambda payload: payload})
    assert result.output == {"id": 7}
    kinds = [event["type"] for event in result.history]
    assert kinds == [
        "ExecutionStarted",
        "PassStateEntered",
        "PassStateExited",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    ]
    exited = result.history[2]["stateExitedEventDetails"]
    assert exited["assignedVariables"] == {"id": "7"}
    scheduled = result.history[4]["taskScheduledEventDetails"]
    assert scheduled["parameters"] == '{"id": 7}'


def test_the_context_object_names_the_machine_and_the_execution() -> None:
    definition = output(
        {
            "machine": "{% $states.context.StateMachine.Name %}",
            "id": "{% $states.context.StateMachine.Id %}",
            "role": "{% $states.context.Execution.RoleArn %}",
            "redrives": "{% $states.context.Execution.RedriveCount %}",
            "execution": "{% $states.context.Execution.Id %}",
            "entered": "{% $exists($states.context.State.EnteredTime) %}",
            "started": "{% $exists($states.context.Execution.StartTime) %}",
            "retries": "{% $states.context.State.RetryCount %}",
        }
    )
    result = execute(definition, {}, name="run-1", machine_name="pricing")
    assert result.output == {
        "machine": "pricing",
        "id": "arn:jetbridge:states:stateMachine:pricing",
        "role": "arn:jetbridge:iam::role/pricing",
        "redrives": 0,
        "execution": "arn:jetbridge:states:execution:pricing:run-1",
        "entered": True,
        "started": True,
        "retries": 0,
    }


def test_the_context_object_hides_the_engine_s_own_keys() -> None:
    definition = machine(
        ("A", {"Type": "Pass", "Assign": {"v": 1}, "Next": "B"}),
        ("B", {"Type": "Pass", "Output": "{% $keys($states.context) %}", "End": True}),
    )
    result = execute(definition, {})
    assert sorted(result.output) == ["Execution", "State", "StateMachine"]


def test_lambda_invoke_takes_its_function_and_payload_from_arguments() -> None:
    definition = machine(
        (
            "T",
            {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Arguments": {
                    "FunctionName": "{% 'arn:aws:lambda:eu-west-1:1:function:' & $states.input.f %}",
                    "Payload": {"n": "{% $states.input.n %}"},
                },
                "Output": "{% $states.result.Payload.n %}",
                "End": True,
            },
        )
    )
    result = execute(definition, {"f": "echo", "n": 3}, {"echo": lambda payload: payload})
    assert (result.status, result.output) == ("SUCCEEDED", 3)


def test_a_callback_task_finds_its_token_in_the_context() -> None:
    definition = machine(
        (
            "Ask",
            {
                "Type": "Task",
                "Resource": "ask.waitForTaskToken",
                "Arguments": {"token": "{% $states.context.Task.Token %}"},
                "Output": "{% $states.result %}",
                "End": True,
            },
        )
    )
    tokens: list[str] = []

    def ask(payload: Any) -> Any:
        tokens.append(payload["token"])
        return {"answered": True}

    result = execute(definition, {}, {"ask": ask})
    assert result.output == {"answered": True}
    assert len(tokens) == 1 and isinstance(tokens[0], str) and tokens[0]


def test_jsonata_leaves_the_process_recursion_limit_as_it_was() -> None:
    import sys

    import jetbridge.workflows.asl.jsonata as module

    assert sys.getrecursionlimit() == module._RECURSION_LIMIT < 10_000
