"""The compiled index agrees with evaluating every pattern on its own."""

from __future__ import annotations

import random
from typing import Any

from jetbridge.events.patterns import RuleMatcher, parse_pattern

FIELDS = ["source", "detail.gate", "detail.delay", "detail.status", "detail.tags", "detail.ip"]
STRINGS = ["A1", "A12", "B3", "boarding", "BOARDING", "delayed", "x", ""]


def random_leaf(rng: random.Random) -> list[Any]:
    choice = rng.randrange(11)
    if choice == 0:
        return [rng.choice(STRINGS) for _ in range(rng.randint(1, 3))]
    if choice == 1:
        return [{"prefix": rng.choice(["A", "B", "bo", ""])}]
    if choice == 2:
        return [{"suffix": rng.choice(["2", "ed", "G"])}]
    if choice == 3:
        return [{"numeric": [">", rng.randint(0, 50)]}]
    if choice == 4:
        low = rng.randint(0, 40)
        return [{"numeric": [">=", low, "<", low + rng.randint(1, 30)]}]
    if choice == 5:
        return [{"exists": rng.choice([True, False])}]
    if choice == 6:
        return [{"anything-but": rng.sample(STRINGS, 2)}]
    if choice == 7:
        return [{"equals-ignore-case": rng.choice(STRINGS)}]
    if choice == 8:
        return [{"wildcard": rng.choice(["A*", "*ed", "b*g"])}]
    if choice == 9:
        return [{"cidr": "10.0.0.0/8"}]
    return [rng.randint(0, 60), None]


def random_pattern(rng: random.Random) -> dict[str, Any]:
    pattern: dict[str, Any] = {}
    for field in rng.sample(FIELDS, rng.randint(1, 3)):
        node = pattern
        *parents, leaf = field.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = random_leaf(rng)
    if rng.random() < 0.15:
        pattern = {"$or": [pattern, {"source": [rng.choice(STRINGS)]}]}
    return pattern


def random_event(rng: random.Random) -> dict[str, Any]:
    detail: dict[str, Any] = {}
    if rng.random() < 0.8:
        detail["gate"] = rng.choice(STRINGS)
    if rng.random() < 0.8:
        detail["delay"] = rng.choice([rng.randint(0, 60), "late", None])
    if rng.random() < 0.7:
        detail["status"] = rng.choice(STRINGS)
    if rng.random() < 0.5:
        detail["tags"] = rng.sample(STRINGS, rng.randint(0, 3))
    if rng.random() < 0.5:
        detail["ip"] = rng.choice(["10.1.2.3", "192.168.0.1", "nope"])
    return {"source": rng.choice(STRINGS), "detail": detail}


def test_index_agrees_with_single_pattern_evaluation() -> None:
    rng = random.Random(20261124)
    patterns = {f"r{n}": random_pattern(rng) for n in range(400)}
    matcher = RuleMatcher()
    for key, pattern in patterns.items():
        matcher.add(key, pattern)
    compiled = {key: parse_pattern(pattern) for key, pattern in patterns.items()}
    hits = 0
    for _ in range(500):
        event = random_event(rng)
        expected = {key for key, pattern in compiled.items() if pattern.matches(event)}
        assert matcher.matches(event) == expected, event
        hits += len(expected)
    assert hits > 500


def test_add_replace_and_remove() -> None:
    matcher = RuleMatcher()
    matcher.add("gates", {"detail": {"gate": [{"prefix": "A"}]}})
    matcher.add("absent", {"detail": {"belt": [{"exists": False}]}})
    event = {"detail": {"gate": "A1"}}
    assert matcher.matches(event) == {"gates", "absent"}
    matcher.add("gates", {"detail": {"gate": ["B1"]}})
    assert matcher.matches(event) == {"absent"}
    matcher.remove("absent")
    assert matcher.matches(event) == set()
    assert len(matcher) == 1
