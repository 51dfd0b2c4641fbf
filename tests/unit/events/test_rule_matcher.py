"""The compiled index agrees with evaluating every pattern on its own."""

from __future__ import annotations

import math
import random
from typing import Any

from jetbridge.events.patterns import RuleMatcher, parse_pattern
from jetbridge.events.patterns.intervals import IntervalTree

FIELDS = ["source", "detail.gate", "detail.delay", "detail.status", "detail.tags", "detail.ip"]
STRINGS = ["A1", "A12", "B3", "boarding", "BOARDING", "delayed", "x", "", "Straße", "STRASSE"]


def random_leaf(rng: random.Random) -> list[Any]:
    if rng.random() < 0.4:
        return more_leaves(rng)
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


def more_leaves(rng: random.Random) -> list[Any]:
    """Operators in every form the value indexes handle, including case folding and nulls."""
    word = rng.choice(STRINGS)
    choices: list[Any] = [
        {"prefix": {"equals-ignore-case": word[:2]}},
        {"suffix": {"equals-ignore-case": word[-2:]}},
        {"suffix": ""},
        {"numeric": ["=", rng.randint(0, 60)]},
        {"numeric": ["<=", rng.randint(0, 60)]},
        {"numeric": [">", rng.randint(0, 30), "<=", rng.randint(31, 60)]},
        {"wildcard": rng.choice(["*", "A*2", "*ing", "b*", "B\\*", "*a*"])},
        {"cidr": rng.choice(["10.1.0.0/16", "10.1.2.3/32", "0.0.0.0/0", "192.168.0.0/24"])},
        {"anything-but": {"prefix": rng.sample(["A", "bo", "B"], rng.randint(1, 2))}},
        {"anything-but": {"suffix": word[-1:] or "x"}},
        {"anything-but": {"wildcard": ["*a*", "B*"]}},
        {"anything-but": {"equals-ignore-case": [word, "X"]}},
        {"anything-but": [rng.randint(0, 60), 5]},
        {"equals-ignore-case": word},
        None,
        True,
    ]
    return rng.sample(choices, rng.randint(1, 2))


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
        detail["delay"] = rng.choice([rng.randint(0, 60), "late", None, 10**400, 7.5, True])
    if rng.random() < 0.7:
        detail["status"] = rng.choice(STRINGS)
    if rng.random() < 0.5:
        detail["tags"] = rng.sample(STRINGS, rng.randint(0, 3))
    if rng.random() < 0.5:
        detail["ip"] = rng.choice(["10.1.2.3", "10.1.9.9", "192.168.0.1", "nope", "::1", 5])
    return {"source": rng.choice(STRINGS), "detail": detail}


def test_index_agrees_with_single_pattern_evaluation() -> None:
    rng = random.Random(20261124)
    patterns = {f"r{n}": random_pattern(rng) for n in range(800)}
    matcher = RuleMatcher()
    for key, pattern in patterns.items():
        matcher.add(key, pattern)
    compiled = {key: parse_pattern(pattern) for key, pattern in patterns.items()}
    hits = 0
    for _ in range(1500):
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


def test_interval_tree_finds_exactly_the_intervals_holding_a_point() -> None:
    rng = random.Random(5)
    tree: IntervalTree[int] = IntervalTree()
    intervals = []
    for number in range(300):
        low = rng.choice([-math.inf, float(rng.randint(-50, 50))])
        high = rng.choice([math.inf, low + rng.randint(0, 20)])
        intervals.append((low, high))
        tree.add(low, high, number)
        if number % 50 == 0:  # queries between additions rebuild the tree
            assert set(tree.containing(0.0)) == {
                n for n, (lo, hi) in enumerate(intervals) if lo <= 0.0 <= hi
            }
    for point in [rng.uniform(-80, 80) for _ in range(200)] + [0.0, 50.0, -50.0]:
        expected = {n for n, (lo, hi) in enumerate(intervals) if lo <= point <= hi}
        assert set(tree.containing(point)) == expected


def test_only_the_paths_rules_name_are_flattened_and_they_match_as_before() -> None:
    from jetbridge.events.patterns.compile import flatten, prefixes

    pattern = {"detail": {"legs": {"gate": ["A1"], "terminal": ["2"]}, "x.y": [1]}}
    matcher = RuleMatcher()
    matcher.add("leg", pattern)
    same_leg = {"detail": {"legs": [{"gate": "A1", "terminal": "2"}], "x": {"y": 1}}}
    split = {"detail": {"legs": [{"gate": "A1", "terminal": "1"}, {"terminal": "2"}], "x.y": 1}}
    for event, expected in ((same_leg, {"leg"}), (split, set())):
        noise = {"flight": {f"f{n}": {"deep": [n, {"more": n}]} for n in range(50)}}
        event = {**event, "source": "s", "detail": {**event["detail"], **noise}}
        assert matcher.matches(event) == expected
        assert parse_pattern(pattern).matches(event) == bool(expected)
    wanted = prefixes(["detail.legs.gate", "detail.x.y"])
    assert wanted == {"detail", "detail.legs", "detail.legs.gate", "detail.x", "detail.x.y"}
    flat = flatten({"detail": {"legs": [{"gate": "A1", "belt": 3}], "other": 1}}, wanted)
    assert flat == {"detail.legs.gate": [("A1", (("detail.legs#0", 0),))]}
