"""Mangled state machines: seeded random edits of the shipped definitions are either refused
with an InvalidDefinition naming the field, or run to a final status; nothing else escapes."""

from __future__ import annotations

import copy
import json
import random
from importlib import resources
from typing import Any

import pytest

from jetbridge.workflows import execute, validate_definition
from jetbridge.workflows.asl.errors import InvalidDefinition
from support.mutations import locations, parent_of

DEFINITIONS = sorted(
    p.name
    for p in resources.files("jetbridge.workflows.definitions").iterdir()
    if p.name.endswith(".json")
)
VALUES: list[Any] = [
    None,
    0,
    -1,
    1.5,
    "",
    "x",
    "$",
    "$.a",
    "$$.",
    [],
    {},
    [1],
    {"a": 1},
    True,
    10**30,
    "States.Format('{}', $.a)",
    "arn:aws:states:::http:invoke",
    "ReserveSeat",
]
FIELDS = [
    "Next",
    "Type",
    "End",
    "Default",
    "Choices",
    "Branches",
    "ItemProcessor",
    "Retry",
    "Catch",
    "ResultPath",
    "Parameters",
    "TimeoutSeconds",
    "HeartbeatSecondsPath",
    "MaxConcurrency",
    "Seconds",
    "Variable",
    "And",
    "Not",
    "StartAt",
]


def mangle(definition: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    mangled = copy.deepcopy(definition)
    for _ in range(rng.randint(1, 3)):
        where = rng.choice([p for p in locations(mangled) if p])
        parent = parent_of(mangled, where)
        kind = rng.random()
        if kind < 0.5:
            parent[where[-1]] = copy.deepcopy(rng.choice(VALUES))
        elif kind < 0.7 and isinstance(parent, dict):
            del parent[where[-1]]
        elif isinstance(parent, dict):
            parent[rng.choice(FIELDS)] = copy.deepcopy(rng.choice(VALUES))
    return mangled


@pytest.mark.parametrize("name", DEFINITIONS)
def test_a_mangled_definition_is_refused_by_name_or_runs_to_an_end(name: str) -> None:
    text = resources.files("jetbridge.workflows.definitions").joinpath(name).read_text()
    definition = json.loads(text)
    rng = random.Random(name)
    refused = ran = 0
    for _ in range(1500):
        mangled = mangle(definition, rng)
        try:
            validate_definition(mangled)
        except InvalidDefinition as error:
            refused += 1
            assert str(error)
            continue
        result = execute(mangled, {"booking_id": "b1", "a": 1}, handlers={}, sleep=lambda s: None)
        assert result.status in {"SUCCEEDED", "FAILED", "TIMED_OUT"}
        ran += 1
    assert refused > 0 and ran > 0  # both paths are exercised
