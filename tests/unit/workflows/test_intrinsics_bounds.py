"""States.StringToJson makes only JSON that can be stored and read back."""

from __future__ import annotations

import pytest

from jetbridge.workflows import execute


def parse(text: str) -> tuple[str, str | None, str | None]:
    definition = {
        "StartAt": "P",
        "States": {
            "P": {"Type": "Pass", "Parameters": {"v.$": "States.StringToJson($.s)"}, "End": True}
        },
    }
    result = execute(definition, {"s": text})
    return result.status, result.error, result.cause


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("[" * 5000 + "]" * 5000, "nested deeper than 64 levels"),
        ('"\\ud800"', "lone surrogate"),
        ("NaN", "is not a JSON number"),
    ],
)
def test_string_to_json_refuses_what_could_not_be_read_back(text: str, cause: str) -> None:
    status, error, why = parse(text)
    assert (status, error) == ("FAILED", "States.IntrinsicFailure")
    assert why is not None and cause in why


def test_string_to_json_parses_json() -> None:
    assert parse('{"a": [1, "\\ud83d\\ude80"]}')[0] == "SUCCEEDED"
