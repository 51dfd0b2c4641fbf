"""Intrinsic functions given the wrong arguments fail the state with States.IntrinsicFailure
naming the function and the argument; no Python error escapes and nothing huge is built."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from jetbridge.workflows import execute
from jetbridge.workflows.asl.errors import InvalidDefinition

DATA = {"s": "a,b", "n": 3, "big": 10**400, "list": [1, 2, 2], "obj": {"a": 1}, "nul": None}


def run(expression: str) -> Any:
    definition = {
        "StartAt": "A",
        "States": {"A": {"Type": "Pass", "Parameters": {"v.$": expression}, "End": True}},
    }
    return execute(definition, DATA)


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("States.Format(1.5, 'x')", "argument 1 must be string"),
        ("States.Base64Decode($.n)", "argument 1 must be string"),
        ("States.Base64Encode($.list)", "argument 1 must be string"),
        ("States.MathAdd('a', 'b')", "argument 1 must be number"),
        ("States.ArrayLength('abc')", "argument 1 must be array"),
        ("States.JsonMerge($.obj, $.list, false)", "argument 2 must be object"),
        ("States.ArrayGetItem($.list)", "takes 2 argument(s), got 1"),
        ("States.UUID(1)", "takes 0 argument(s), got 1"),
        ("States.StringSplit($.s, '')", "must not be empty"),
        ("States.ArrayRange(0, $.big, 1)", "States.ArrayRange"),
        ("States.ArrayRange(0, 999999999999, 1)", "limited to 1000"),
    ],
)
def test_wrong_arguments_fail_with_an_intrinsic_failure(expression: str, fragment: str) -> None:
    started = time.perf_counter()
    result = run(expression)
    assert time.perf_counter() - started < 1.0  # refused before building anything large
    assert (result.status, result.error) == ("FAILED", "States.IntrinsicFailure")
    assert fragment in result.cause


def test_functions_with_optional_and_repeated_arguments_still_work() -> None:
    assert run("States.Format('plain')").output == {"v": "plain"}
    assert run("States.Array()").output == {"v": []}
    assert run("States.MathRandom(1, 1)").output == {"v": 1}


FUNCTIONS = [
    "States.Format", "States.StringToJson", "States.JsonToString", "States.Array",
    "States.ArrayPartition", "States.ArrayContains", "States.ArrayRange", "States.ArrayGetItem",
    "States.ArrayLength", "States.ArrayUnique", "States.Base64Encode", "States.Base64Decode",
    "States.Hash", "States.JsonMerge", "States.MathRandom", "States.MathAdd",
    "States.StringSplit", "States.UUID",
]  # fmt: skip
ARGUMENTS = [
    "$.s", "$.n", "$.big", "$.list", "$.obj", "$.nul", "'x'", "'{\"a\":'", "''", "1", "-1",
    "0", "1.5", "99999999999", "null", "true", "'SHA-256'", "$$.Execution.Id",
]  # fmt: skip


def test_random_calls_end_in_a_result_or_an_intrinsic_failure() -> None:
    rng = random.Random(4)

    def call(depth: int) -> str:
        arguments = [
            call(depth + 1) if depth < 2 and rng.random() < 0.2 else rng.choice(ARGUMENTS)
            for _ in range(rng.randint(0, 4))
        ]
        return f"{rng.choice(FUNCTIONS)}({', '.join(arguments)})"

    failures = 0
    for _ in range(3000):
        try:
            result = run(call(0))
        except InvalidDefinition:
            continue
        assert result.status in {"SUCCEEDED", "FAILED"}
        if result.status == "FAILED":
            assert result.error == "States.IntrinsicFailure", result.cause
            failures += 1
    assert failures > 0
