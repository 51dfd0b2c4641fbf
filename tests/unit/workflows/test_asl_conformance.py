"""Step Functions conformance: each case in data/asl_conformance.json is a definition, an input
and what Step Functions does with them (output, or error and cause, or a refused definition),
with the page of the AWS Step Functions Developer Guide or the ASL specification it comes from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jetbridge.workflows import InvalidDefinition, TaskFailed, execute

CASES = json.loads((Path(__file__).parent / "data" / "asl_conformance.json").read_text())


def handlers() -> dict[str, Any]:
    attempts: list[int] = []

    def fail(payload: Any) -> Any:
        raise TaskFailed("Custom.Error", "boom")

    def flaky(payload: Any) -> Any:
        attempts.append(1)
        if len(attempts) < 2:
            raise TaskFailed("Flaky", "first attempt")
        return {**payload, "attempt": len(attempts)}

    return {
        "echo": lambda payload: payload,
        "fail": fail,
        "flaky": flaky,
        "big": lambda payload: {"blob": "x" * (256 * 1024)},
    }


def test_the_corpus_is_large_and_every_case_names_its_source() -> None:
    assert len(CASES) >= 200
    assert all(case["source"].startswith("https://") for case in CASES)
    assert len({case["name"] for case in CASES}) == len(CASES)


def test_the_corpus_covers_jsonata_from_aws_pages() -> None:
    jsonata = [case for case in CASES if "JSONata" in json.dumps(case["definition"])]
    assert len(jsonata) >= 60
    aws = "https://docs.aws.amazon.com/step-functions/latest/dg/"
    assert all(case["source"].startswith(aws) for case in jsonata)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_conformance(case: dict[str, Any]) -> None:
    if "invalid" in case:
        with pytest.raises(InvalidDefinition) as refused:
            execute(case["definition"], case["input"], handlers())
        assert case["invalid"] in str(refused.value)
        return
    result = execute(
        case["definition"], case["input"], handlers(), name="conformance", sleep=lambda _: None
    )
    assert (result.status, result.error) == (case["status"], case.get("error")), result.cause
    if "output" in case:
        assert result.output == case["output"]
    if "output_keys" in case:
        assert sorted(result.output) == case["output_keys"]
    if "cause" in case:
        assert result.cause == case["cause"]
    if "cause_contains" in case:
        assert case["cause_contains"] in (result.cause or "")
