"""The pattern language against a corpus of cases taken from AWS's documentation and event-ruler.

Each case in data/pattern_conformance.json names its source; a valid case gives an event and the
expected answer, an invalid one is a pattern EventBridge refuses. The compiled rule index must
give the same answers as evaluating each pattern on its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jetbridge.events import InvalidEventPattern
from jetbridge.events import test_event_pattern as match
from jetbridge.events.patterns import RuleMatcher, parse_pattern

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "pattern_conformance.json").read_text()
)["cases"]
VALID = [case for case in CASES if not case.get("invalid")]
INVALID = [case for case in CASES if case.get("invalid")]


def test_the_corpus_is_broad() -> None:
    assert len(CASES) >= 150
    assert all(case["source"] for case in CASES)
    assert sum(case["match"] for case in VALID) > 40
    assert sum(not case["match"] for case in VALID) > 40


@pytest.mark.parametrize("case", VALID, ids=[case["name"] for case in VALID])
def test_valid_case(case: dict[str, Any]) -> None:
    assert match(case["pattern"], case["event"]) is case["match"]
    assert match(json.dumps(case["pattern"]), json.dumps(case["event"])) is case["match"]


@pytest.mark.parametrize("case", INVALID, ids=[case["name"] for case in INVALID])
def test_invalid_case(case: dict[str, Any]) -> None:
    with pytest.raises(InvalidEventPattern) as caught:
        parse_pattern(case["pattern"])
    assert "Event pattern is not valid" in str(caught.value)


def test_the_index_agrees_on_every_corpus_event() -> None:
    matcher = RuleMatcher()
    compiled = {case["name"]: parse_pattern(case["pattern"]) for case in VALID}
    for name, pattern in compiled.items():
        matcher.add(name, pattern)
    for case in VALID:
        expected = {name for name, pattern in compiled.items() if pattern.matches(case["event"])}
        assert matcher.matches(case["event"]) == expected, case["name"]
        assert (case["name"] in expected) is case["match"]
