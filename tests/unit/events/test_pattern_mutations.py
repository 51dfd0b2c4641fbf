"""Mangled rule patterns: seeded random edits of realistic patterns either compile and match
or are refused with InvalidEventPattern; nothing else escapes to the API or the router."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from jetbridge.events import InvalidEventPattern, test_event_pattern
from support.mutations import locations, parent_of

PATTERNS: list[dict[str, Any]] = [
    {
        "source": ["jetbridge.flights"],
        "detail-type": ["flight.updated"],
        "detail": {"changed": ["gate"], "flight": {"gate": [{"prefix": "A"}]}},
    },
    {
        "detail": {
            "delay": [{"numeric": [">", 30, "<=", 120]}],
            "status": [{"anything-but": ["cancelled"]}],
            "$or": [{"gate": [{"exists": True}]}, {"belt": [{"equals-ignore-case": "x"}]}],
        }
    },
    {
        "detail": {
            "code": [
                {"wildcard": "LX*"},
                {"suffix": "Z"},
                {"cidr": "10.0.0.0/24"},
                {"anything-but": {"prefix": "x"}},
            ]
        }
    },
]
EVENT = {
    "id": "1",
    "source": "jetbridge.flights",
    "detail-type": "flight.updated",
    "account": "1",
    "region": "zrh",
    "time": "2026-11-24T00:00:00Z",
    "resources": [],
    "detail": {
        "changed": ["gate"],
        "flight": {"gate": "A1"},
        "delay": 45,
        "status": "delayed",
        "gate": "A",
        "code": "LX1",
        "huge": 10**400,
    },
}
VALUES: list[Any] = [
    None, 0, -1, 1.5, "", "x", [], {}, [1], {"a": 1}, True, 10**400,
    [{"numeric": []}], [{"numeric": [">", "x"]}], [{"numeric": [[">"], 1]}], [{"prefix": 1}],
    [{"wildcard": "***"}], [{"cidr": "999.1.1.1/99"}], [{"anything-but": []}],
    [{"exists": "yes"}], [{"equals-ignore-case": 3}], [{"suffix": {}}],
]  # fmt: skip
KEYS = ["$or", "numeric", "prefix", "huge", "exists", "anything-but"]


def mangle(pattern: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    mangled = copy.deepcopy(pattern)
    for _ in range(rng.randint(1, 3)):
        where = rng.choice([p for p in locations(mangled) if p])
        parent = parent_of(mangled, where)
        if rng.random() < 0.6:
            parent[where[-1]] = copy.deepcopy(rng.choice(VALUES))
        elif isinstance(parent, dict):
            parent[rng.choice(KEYS)] = copy.deepcopy(rng.choice(VALUES))
    return mangled


@pytest.mark.parametrize("index", range(len(PATTERNS)))
def test_a_mangled_pattern_matches_or_is_refused_by_path(index: int) -> None:
    rng = random.Random(index)
    refused = compiled = 0
    for _ in range(2000):
        pattern = mangle(PATTERNS[index], rng)
        try:
            assert test_event_pattern(pattern, EVENT) in {True, False}
            compiled += 1
        except InvalidEventPattern as error:
            assert str(error)
            refused += 1
    assert refused > 0 and compiled > 0
