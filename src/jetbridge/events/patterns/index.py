"""Many rules, one pass: an index over field paths and values, in the manner of event-ruler.

Each event is flattened once. Exact values are found by hash lookup, prefixes by looking up each
prefix of the value, other operators are tried only on the paths where some rule uses them. A
conjunction whose indexed conditions are all satisfied is a candidate; candidates are confirmed
with the full single-pattern semantics (absence, same array element). The cost per event grows
with the event's size and the number of candidates, not with the number of rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jetbridge.events.patterns.compile import CompiledPattern, Conjunction, flatten, parse_pattern
from jetbridge.events.patterns.matchers import Exact, Exists, Matcher, Prefix, value_key

Slot = tuple[int, int]  # (conjunction number, condition number)


@dataclass
class _Index:
    conjunctions: list[tuple[str, Conjunction]] = field(default_factory=list)
    needed: list[int] = field(default_factory=list)
    always: list[int] = field(default_factory=list)
    exact: dict[str, dict[tuple[str, Any], list[Slot]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    prefix: dict[str, dict[str, list[Slot]]] = field(default_factory=lambda: defaultdict(dict))
    present: dict[str, list[Slot]] = field(default_factory=lambda: defaultdict(list))
    other: dict[str, list[tuple[Matcher, Slot]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, key: str, conjunction: Conjunction) -> None:
        number = len(self.conjunctions)
        self.conjunctions.append((key, conjunction))
        indexed = 0
        for position, condition in enumerate(conjunction.conditions):
            if condition.allows_absence:
                continue
            indexed += 1
            for matcher in condition.matchers:
                self._register(condition.path, matcher, (number, position))
        self.needed.append(indexed)
        if indexed == 0:
            self.always.append(number)

    def _register(self, path: str, matcher: Matcher, slot: Slot) -> None:
        if isinstance(matcher, Exact):
            self.exact[path].setdefault(matcher.key, []).append(slot)
        elif isinstance(matcher, Prefix) and not matcher.ignore_case:
            self.prefix[path].setdefault(matcher.text, []).append(slot)
        elif isinstance(matcher, Exists):
            self.present[path].append(slot)
        else:
            self.other[path].append((matcher, slot))


class RuleMatcher:
    """The compiled rules of one bus: `matches(event)` returns the keys of every matching rule."""

    def __init__(self) -> None:
        self._patterns: dict[str, CompiledPattern] = {}
        self._index: _Index | None = None

    def __len__(self) -> int:
        return len(self._patterns)

    def add(self, key: str, pattern: str | Mapping[str, Any] | CompiledPattern) -> None:
        self._patterns[key] = parse_pattern(pattern)
        self._index = None

    def remove(self, key: str) -> None:
        self._patterns.pop(key, None)
        self._index = None

    def _built(self) -> _Index:
        if self._index is None:
            index = _Index()
            for key, pattern in self._patterns.items():
                for conjunction in pattern.conjunctions:
                    index.add(key, conjunction)
            self._index = index
        return self._index

    def matches(self, event: Mapping[str, Any]) -> set[str]:
        index = self._built()
        flat = flatten(event)
        satisfied: dict[int, set[int]] = defaultdict(set)
        for path, entries in flat.items():
            _collect(index, path, [value for value, _ in entries], satisfied)
        candidates = [c for c, slots in satisfied.items() if len(slots) == index.needed[c]]
        matched: set[str] = set()
        for number in (*candidates, *index.always):
            key, conjunction = index.conjunctions[number]
            if key not in matched and conjunction.matches(flat):
                matched.add(key)
        return matched


def _collect(index: _Index, path: str, values: list[Any], satisfied: dict[int, set[int]]) -> None:
    exact = index.exact.get(path)
    prefixes = index.prefix.get(path)
    others = index.other.get(path)
    for conjunction, condition in index.present.get(path, ()):
        satisfied[conjunction].add(condition)
    for value in values:
        if exact:
            for conjunction, condition in exact.get(value_key(value), ()):
                satisfied[conjunction].add(condition)
        if prefixes and isinstance(value, str):
            for length in range(len(value) + 1):
                for conjunction, condition in prefixes.get(value[:length], ()):
                    satisfied[conjunction].add(condition)
        if others:
            for matcher, (conjunction, condition) in others:
                if matcher.matches(value):
                    satisfied[conjunction].add(condition)
