"""Many rules, one pass: a trie of conditions over field paths, in the manner of event-ruler.

Each rule's conditions are sorted by field path and threaded into a shared trie; rules with the
same leading conditions share nodes. Matching flattens the event once and walks the trie from
the root, following only edges whose field has a matching value (exact values by hash lookup,
prefixes by looking up each prefix of the value, other operators tried on the edges reached).
A node reached at the end of a rule's conditions makes it a candidate, confirmed with the full
single-pattern semantics (absence, same array element). The work per event follows the rules
that partly match it, not the number of rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jetbridge.events.patterns.compile import (
    CompiledPattern,
    Condition,
    Conjunction,
    flatten,
    parse_pattern,
)
from jetbridge.events.patterns.matchers import Exact, Exists, Matcher, Prefix, Scalar, value_key


@dataclass(eq=False)
class _Edges:
    exact: dict[tuple[str, Any], list[_Node]] = field(default_factory=dict)
    prefix: dict[str, list[_Node]] = field(default_factory=dict)
    present: list[_Node] = field(default_factory=list)
    other: list[tuple[Matcher, _Node]] = field(default_factory=list)

    def register(self, matcher: Matcher, child: _Node) -> None:
        if isinstance(matcher, Exact):
            self.exact.setdefault(matcher.key, []).append(child)
        elif isinstance(matcher, Prefix) and not matcher.ignore_case:
            self.prefix.setdefault(matcher.text, []).append(child)
        elif isinstance(matcher, Exists):
            self.present.append(child)
        else:
            self.other.append((matcher, child))

    def follow(self, values: list[Scalar], out: list[_Node]) -> None:
        out.extend(self.present)
        for value in values:
            if self.exact:
                out.extend(self.exact.get(value_key(value), ()))
            if self.prefix and isinstance(value, str):
                for length in range(len(value) + 1):
                    out.extend(self.prefix.get(value[:length], ()))
            for matcher, child in self.other:
                if matcher.matches(value):
                    out.append(child)


@dataclass(eq=False)
class _Node:
    children: dict[tuple[str, tuple[Matcher, ...]], _Node] = field(default_factory=dict)
    edges: dict[str, _Edges] = field(default_factory=dict)
    terminals: list[int] = field(default_factory=list)

    def child(self, condition: Condition) -> _Node:
        key = (condition.path, condition.matchers)
        found = self.children.get(key)
        if found is None:
            found = self.children[key] = _Node()
            edges = self.edges.setdefault(condition.path, _Edges())
            for matcher in dict.fromkeys(condition.matchers):
                edges.register(matcher, found)
        return found


class RuleMatcher:
    """The compiled rules of one bus: `matches(event)` returns the keys of every matching rule."""

    def __init__(self) -> None:
        self._patterns: dict[str, CompiledPattern] = {}
        self._root: _Node | None = None
        self._conjunctions: list[tuple[str, Conjunction]] = []

    def __len__(self) -> int:
        return len(self._patterns)

    def add(self, key: str, pattern: str | Mapping[str, Any] | CompiledPattern) -> None:
        self._patterns[key] = parse_pattern(pattern)
        self._root = None

    def remove(self, key: str) -> None:
        self._patterns.pop(key, None)
        self._root = None

    def _built(self) -> _Node:
        if self._root is None:
            root = _Node()
            self._conjunctions = []
            for key, pattern in self._patterns.items():
                for conjunction in pattern.conjunctions:
                    node = root
                    indexed = [c for c in conjunction.conditions if not c.allows_absence]
                    for condition in sorted(indexed, key=lambda c: c.path):
                        node = node.child(condition)
                    node.terminals.append(len(self._conjunctions))
                    self._conjunctions.append((key, conjunction))
            self._root = root
        return self._root

    def matches(self, event: Mapping[str, Any]) -> set[str]:
        root = self._built()
        flat = flatten(event)
        values = {path: [value for value, _ in entries] for path, entries in flat.items()}
        seen: set[int] = set()
        stack = [root]
        matched: set[str] = set()
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            for number in node.terminals:
                key, conjunction = self._conjunctions[number]
                if key not in matched and conjunction.matches(flat):
                    matched.add(key)
            for path, edges in node.edges.items():
                found = values.get(path)
                if found:
                    edges.follow(found, stack)
        return matched
