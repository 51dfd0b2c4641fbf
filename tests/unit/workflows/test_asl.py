"""The ASL interpreter: the reference booking saga unmodified, and the language's semantics."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from jetbridge.workflows import InvalidDefinition, TaskFailed, execute

SAGA = json.loads(
    resources.files("jetbridge.workflows").joinpath("definitions/booking-saga.asl.json").read_text()
)
SHARED = Path(__file__).parents[4] / "shared" / "booking-saga.asl.json"


def test_the_shipped_reference_saga_is_the_original() -> None:
    if SHARED.exists():
        assert json.loads(SHARED.read_text()) == SAGA
    assert SAGA["StartAt"] == "ReserveSeat"


def saga_handlers(fail: str | None = None) -> tuple[dict[str, Any], list[str]]:
    calls: list[str] = []

    def step(name: str) -> Any:
        def run(payload: Any) -> Any:
            calls.append(name)
            if name == fail:
                raise TaskFailed(f"{name}Failed", json.dumps({"booking_id": "b1"}))
            return {**payload, name: "done"} if isinstance(payload, dict) else payload

        return run

    names = ["ReserveSeat", "ProcessPayment", "IssueTicket", "CancelReservation", "RefundPayment"]
    return {name: step(name) for name in names}, calls


def test_booking_saga_happy_path() -> None:
    handlers, calls = saga_handlers()
    result = execute(SAGA, {"booking_id": "b1"}, handlers)
    assert result.status == "SUCCEEDED"
    assert calls == ["ReserveSeat", "ProcessPayment", "IssueTicket"]
    assert result.output == {
        "booking_id": "b1",
        "ReserveSeat": "done",
        "ProcessPayment": "done",
        "IssueTicket": "done",
    }
    kinds = [event["type"] for event in result.history]
    assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionSucceeded"
    assert kinds.count("TaskScheduled") == 3 and "TaskStateEntered" in kinds


def test_booking_saga_reserve_seat_failure_cancels() -> None:
    handlers, calls = saga_handlers(fail="ReserveSeat")
    result = execute(SAGA, {"booking_id": "b1"}, handlers)
    assert calls == ["ReserveSeat", "CancelReservation"]
    assert result.status == "SUCCEEDED"
    assert result.output["Error"] == "ReserveSeatFailed"


def test_booking_saga_payment_failure_refunds_and_cancels_in_parallel() -> None:
    handlers, calls = saga_handlers(fail="ProcessPayment")
    result = execute(SAGA, {"booking_id": "b1"}, handlers)
    assert calls[:2] == ["ReserveSeat", "ProcessPayment"]
    assert sorted(calls[2:]) == ["CancelReservation", "RefundPayment"]
    assert result.status == "SUCCEEDED"
    assert len(result.output) == 2
    assert "ParallelStateEntered" in [e["type"] for e in result.history]


def machine(states: dict[str, Any], start: str = "A", **extra: Any) -> dict[str, Any]:
    return {"StartAt": start, "States": states, **extra}


def test_input_parameters_result_and_output_paths() -> None:
    definition = machine(
        {
            "A": {
                "Type": "Task",
                "Resource": "Echo",
                "InputPath": "$.order",
                "Parameters": {
                    "id.$": "$.id",
                    "fixed": 1,
                    "text.$": "States.Format('Order {} of {}', $.id, $$.Execution.Name)",
                },
                "ResultSelector": {"echoed.$": "$.id", "text.$": "$.text"},
                "ResultPath": "$.result.inner",
                "OutputPath": "$.result",
                "End": True,
            }
        }
    )
    result = execute(definition, {"order": {"id": 7}}, {"Echo": lambda p: p}, name="run-1")
    assert result.output == {"inner": {"echoed": 7, "text": "Order 7 of run-1"}}


def test_result_path_null_keeps_the_input_and_missing_paths_fail() -> None:
    keep = machine({"A": {"Type": "Pass", "Result": {"x": 1}, "ResultPath": None, "End": True}})
    assert execute(keep, {"a": 1}).output == {"a": 1}
    missing = machine({"A": {"Type": "Pass", "InputPath": "$.nope", "End": True}})
    result = execute(missing, {"a": 1})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")


@pytest.mark.parametrize(
    ("rule", "data", "expected"),
    [
        ({"Variable": "$.n", "NumericGreaterThan": 5}, {"n": 6}, True),
        ({"Variable": "$.n", "NumericLessThanEqualsPath": "$.m"}, {"n": 5, "m": 5}, True),
        ({"Variable": "$.s", "StringMatches": "LX*-2026"}, {"s": "LX100-2026"}, True),
        ({"Variable": "$.s", "StringEquals": "a"}, {"s": 1}, False),
        (
            {"Variable": "$.t", "TimestampLessThan": "2026-11-24T10:00:00Z"},
            {"t": "2026-11-24T09:00:00Z"},
            True,
        ),
        ({"Variable": "$.b", "BooleanEquals": True}, {"b": True}, True),
        ({"Variable": "$.x", "IsPresent": False}, {}, True),
        ({"Variable": "$.x", "IsNull": True}, {"x": None}, True),
        ({"Variable": "$.x", "IsTimestamp": True}, {"x": "nope"}, False),
        (
            {
                "And": [
                    {"Variable": "$.n", "NumericGreaterThan": 1},
                    {"Not": {"Variable": "$.n", "NumericEquals": 3}},
                ]
            },
            {"n": 2},
            True,
        ),
        (
            {
                "Or": [
                    {"Variable": "$.n", "NumericEquals": 1},
                    {"Variable": "$.n", "IsString": True},
                ]
            },
            {"n": 2},
            False,
        ),
    ],
)
def test_choice_rules(rule: dict[str, Any], data: dict[str, Any], expected: bool) -> None:
    definition = machine(
        {
            "A": {"Type": "Choice", "Choices": [{**rule, "Next": "Yes"}], "Default": "No"},
            "Yes": {"Type": "Pass", "Result": True, "End": True},
            "No": {"Type": "Pass", "Result": False, "End": True},
        }
    )
    assert execute(definition, data).output is expected


def test_no_choice_matched() -> None:
    definition = machine(
        {
            "A": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "B"}],
            },
            "B": {"Type": "Succeed"},
        }
    )
    assert execute(definition, {"n": 2}).error == "States.NoChoiceMatched"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("States.Array(1, 'two', null)", [1, "two", None]),
        ("States.ArrayPartition(States.ArrayRange(1, 7, 1), 3)", [[1, 2, 3], [4, 5, 6], [7]]),
        ("States.ArrayContains($.list, 2)", True),
        ("States.ArrayGetItem($.list, 1)", 2),
        ("States.ArrayLength($.list)", 3),
        ("States.ArrayUnique(States.Array(1, 1, 2))", [1, 2]),
        ("States.Base64Decode(States.Base64Encode('jetbridge'))", "jetbridge"),
        (
            "States.Hash('abc', 'SHA-256')",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        ("States.JsonMerge($.a, $.b, false)", {"x": 1, "y": 3}),
        ("States.StringToJson('{\"k\": 1}')", {"k": 1}),
        ("States.JsonToString($.a)", '{"x":1,"y":2}'),
        ("States.MathAdd(40, 2)", 42),
        ("States.StringSplit('a,b;c', ',;')", ["a", "b", "c"]),
        ("States.Format('\\{{}\\}', 'x')", "{x}"),
    ],
)
def test_intrinsic_functions(expression: str, expected: Any) -> None:
    definition = machine({"A": {"Type": "Pass", "Parameters": {"v.$": expression}, "End": True}})
    data = {"list": [1, 2, 3], "a": {"x": 1, "y": 2}, "b": {"y": 3}}
    assert execute(definition, data).output == {"v": expected}


def test_uuid_and_random_and_failing_intrinsics() -> None:
    definition = machine(
        {
            "A": {
                "Type": "Pass",
                "Parameters": {"u.$": "States.UUID()", "r.$": "States.MathRandom(1, 3)"},
                "End": True,
            }
        }
    )
    output = execute(definition, {}).output
    assert len(output["u"]) == 36 and 1 <= output["r"] <= 3
    bad = machine(
        {"A": {"Type": "Pass", "Parameters": {"v.$": "States.ArrayGetItem($.l, 5)"}, "End": True}}
    )
    assert execute(bad, {"l": [1]}).error == "States.IntrinsicFailure"


def test_retry_with_backoff_then_catch() -> None:
    attempts: list[int] = []
    waits: list[float] = []

    def flaky(payload: Any) -> Any:
        attempts.append(1)
        raise TaskFailed("Transient", "try again")

    definition = machine(
        {
            "A": {
                "Type": "Task",
                "Resource": "Flaky",
                "Retry": [
                    {
                        "ErrorEquals": ["Transient"],
                        "IntervalSeconds": 2,
                        "MaxAttempts": 3,
                        "BackoffRate": 3,
                        "MaxDelaySeconds": 10,
                    }
                ],
                "Catch": [
                    {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Handled"}
                ],
                "End": True,
            },
            "Handled": {"Type": "Pass", "End": True},
        }
    )
    result = execute(definition, {"k": 1}, {"Flaky": flaky}, sleep=waits.append)
    assert len(attempts) == 4
    assert waits == [2, 6, 10]
    assert result.output == {"k": 1, "error": {"Error": "Transient", "Cause": "try again"}}


def test_handler_exceptions_look_like_lambda_errors_and_fail_the_execution() -> None:
    def broken(payload: Any) -> Any:
        raise KeyError("seat")

    result = execute(
        machine(
            {
                "A": {
                    "Type": "Task",
                    "Resource": "arn:aws:lambda:eu-west-1:1:function:Broken",
                    "End": True,
                }
            }
        ),
        {},
        {"Broken": broken},
    )
    assert (result.status, result.error) == ("FAILED", "KeyError")
    assert json.loads(result.cause or "{}")["errorType"] == "KeyError"


def test_task_timeout() -> None:
    import threading

    release = threading.Event()
    definition = machine(
        {"A": {"Type": "Task", "Resource": "Slow", "TimeoutSeconds": 1, "End": True}}
    )
    try:
        result = execute(definition, {}, {"Slow": lambda p: release.wait(10)})
    finally:
        release.set()
    assert result.error == "States.Timeout"
    kinds = [e["type"] for e in result.history]
    assert kinds[-1] == "ExecutionFailed" and "TaskTimedOut" in kinds


def test_parallel_and_map_keep_order() -> None:
    definition = machine(
        {
            "A": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "X", "States": {"X": {"Type": "Pass", "Result": "x", "End": True}}},
                    {"StartAt": "Y", "States": {"Y": {"Type": "Pass", "Result": "y", "End": True}}},
                ],
                "ResultPath": "$.parallel",
                "Next": "M",
            },
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 2,
                "ItemSelector": {"value.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index"},
                "ItemProcessor": {
                    "StartAt": "Double",
                    "States": {"Double": {"Type": "Task", "Resource": "Double", "End": True}},
                },
                "ResultPath": "$.mapped",
                "End": True,
            },
        }
    )
    result = execute(
        definition, {"items": [1, 2, 3]}, {"Double": lambda p: p["value"] * 2 + p["index"] * 100}
    )
    assert result.output["parallel"] == ["x", "y"]
    assert result.output["mapped"] == [2, 104, 206]


def test_wait_and_fail_states() -> None:
    waits: list[float] = []
    definition = machine(
        {
            "A": {"Type": "Wait", "SecondsPath": "$.seconds", "Next": "F"},
            "F": {"Type": "Fail", "ErrorPath": "$.code", "CausePath": "$.why"},
        }
    )
    result = execute(
        definition, {"seconds": 3, "code": "Oops", "why": "because"}, sleep=waits.append
    )
    assert waits == [3.0]
    assert (result.status, result.error, result.cause) == ("FAILED", "Oops", "because")


@pytest.mark.parametrize(
    ("definition", "fragment"),
    [
        ({"StartAt": "A", "States": {}}, "States"),
        ({"StartAt": "B", "States": {"A": {"Type": "Succeed"}}}, "StartAt"),
        ({"StartAt": "A", "States": {"A": {"Type": "Magic"}}}, "States.A.Type"),
        ({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Z"}}}, "States.A.Next"),
        ({"StartAt": "A", "States": {"A": {"Type": "Pass"}}}, "States.A"),
        (
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True, "Bogus": 1}}},
            "States.A.Bogus",
        ),
        ({"StartAt": "A", "States": {"A": {"Type": "Task", "End": True}}}, "States.A.Resource"),
        ({"StartAt": "A", "States": {"A": {"Type": "Choice", "Choices": []}}}, "States.A.Choices"),
        (
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "InputPath": "nope", "End": True}}},
            "States.A.InputPath",
        ),
        (
            {
                "StartAt": "A",
                "States": {
                    "A": {"Type": "Pass", "Parameters": {"x.$": "States.Nope()"}, "End": True}
                },
            },
            "States.A.Parameters.x.$",
        ),
        (
            {
                "StartAt": "A",
                "States": {
                    "A": {
                        "Type": "Task",
                        "Resource": "R",
                        "End": True,
                        "Retry": [{"ErrorEquals": ["States.ALL", "X"]}],
                    }
                },
            },
            "States.A.Retry[0].ErrorEquals",
        ),
        (
            {"StartAt": "A", "States": {"A": {"Type": "Fail", "Error": "E", "ErrorPath": "$.e"}}},
            "States.A.ErrorPath",
        ),
        ({"StartAt": "A", "States": {"A": {"Type": "Wait", "End": True}}}, "States.A"),
        ("{not json", "not valid JSON"),
    ],
)
def test_invalid_definitions_name_state_and_field(definition: Any, fragment: str) -> None:
    with pytest.raises(InvalidDefinition) as caught:
        execute(definition, {})
    assert fragment in str(caught.value)


def test_machine_timeout() -> None:
    import time

    definition = machine(
        {"A": {"Type": "Task", "Resource": "Slow", "Next": "B"}, "B": {"Type": "Succeed"}},
        TimeoutSeconds=1,
    )
    result = execute(definition, {}, {"Slow": lambda p: time.sleep(1.1)})
    assert result.status == "TIMED_OUT"


@pytest.mark.parametrize("seconds", [0.5, 0, -1, "60", True, None, 100_000_000])
def test_the_machine_timeout_must_be_a_positive_integer(seconds: Any) -> None:
    definition = machine({"A": {"Type": "Pass", "End": True}}, TimeoutSeconds=seconds)
    with pytest.raises(InvalidDefinition) as caught:
        execute(definition, {})
    assert str(caught.value).startswith("TimeoutSeconds: must be a positive integer")
    assert json.dumps(seconds) in str(caught.value)


def test_lambda_invoke_returns_the_response_and_a_callback_the_answer() -> None:
    def invoke(callback: bool) -> dict[str, Any]:
        suffix = ".waitForTaskToken" if callback else ""
        return machine(
            {
                "A": {
                    "Type": "Task",
                    "Resource": f"arn:aws:states:::lambda:invoke{suffix}",
                    "Parameters": {"FunctionName": "Approve", "Payload": {"seat.$": "$.seat"}},
                    "End": True,
                }
            }
        )

    handlers = {"Approve": lambda p: {"approved": p["seat"]}}
    invoked = execute(invoke(callback=False), {"seat": "12A"}, handlers)
    assert invoked.output == {"Payload": {"approved": "12A"}, "StatusCode": 200}
    answered = execute(invoke(callback=True), {"seat": "12A"}, handlers)
    assert answered.output == {"approved": "12A"}


def test_a_resumed_wait_only_waits_what_is_left() -> None:
    from datetime import UTC, datetime, timedelta

    definition = machine(
        {
            "A": {"Type": "Wait", "Seconds": 10, "Next": "B"},
            "B": {"Type": "Task", "Resource": "T", "End": True},
        }
    )
    calls: list[int] = []
    first = execute(
        definition, {}, {"T": lambda p: calls.append(1) or "done"}, sleep=lambda s: None
    )
    entered = (datetime.now(UTC) - timedelta(seconds=7)).isoformat().replace("+00:00", "Z")
    recorded = [
        dict(e, timestamp=entered) if e["type"] == "WaitStateEntered" else e for e in first.history
    ]
    assert [e["type"] for e in recorded[:3]] == [
        "ExecutionStarted",
        "WaitStateEntered",
        "WaitStateExited",
    ]
    waits: list[float] = []
    resumed = execute(
        definition,
        {},
        {"T": lambda p: calls.append(2) or "again"},
        sleep=waits.append,
        previous=recorded[:2],  # interrupted during the Wait
    )
    assert resumed.output == "again"
    assert len(waits) == 1 and 2.5 < waits[0] <= 3.0
    waits.clear()
    after = execute(
        definition, {}, {"T": lambda p: "third"}, sleep=waits.append, previous=recorded[:3]
    )
    assert (after.output, waits) == ("third", [])  # the Wait had ended: no second wait


def test_nested_state_machines() -> None:
    child = machine(
        {
            "A": {
                "Type": "Pass",
                "Parameters": {"doubled.$": "States.MathAdd($.n, $.n)"},
                "End": True,
            }
        }
    )
    parent = machine(
        {
            "A": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": {
                    "StateMachineArn": "arn:aws:states:eu-west-1:1:stateMachine:Double",
                    "Input": {"n.$": "$.n"},
                },
                "OutputPath": "$.Output",
                "Next": "B",
            },
            "B": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync",
                "Parameters": {"StateMachineArn": "Missing"},
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "C"}],
                "End": True,
            },
            "C": {"Type": "Pass", "End": True},
        }
    )
    result = execute(parent, {"n": 21}, machines={"Double": child})
    assert result.output["doubled"] == 42
    assert result.output["error"]["Error"] == "StateMachineDoesNotExist"
