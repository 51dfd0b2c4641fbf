"""Many rules, one pass: a trie of conditions over field paths, in the manner of event-ruler.

Each rule's conditions are ordered most selective first (exact values, then prefixes, suffixes,
ignore-case, single numbers, then ranges and wildcards, anything-but and exists last) and threaded
into a shared trie; rules with the same leading conditions share nodes. Matching flattens the
event once and walks the trie from the root, following only edges whose field has an accepted
value, found through the value indexes of `edges.py`. A node reached at the end of a rule's
conditions makes it a candidate, confirmed with the full single-pattern semantics (absence, same
array element). The work per event follows the rules that can match it, not the number of rules.
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
    prefixes,
)
from jetbridge.events.patterns.edges import Edges
from jetbridge.events.patterns.matchers import (
    AnythingBut,
    Exact,
    Exists,
    Matcher,
    Numeric,
    Wildcard,
)


@dataclass(eq=False)
class _Node:
    children: dict[tuple[str, tuple[Matcher, ...]], _Node] = field(default_factory=dict)
    edges: dict[str, Edges[_Node]] = field(default_factory=dict)
    terminals: list[int] = field(default_factory=list)

    def child(self, condition: Condition) -> _Node:
        key = (condition.path, condition.matchers)
        found = self.children.get(key)
        if found is None:
            found = self.children[key] = _Node()
            edges = self.edges.setdefault(condition.path, Edges())
            for matcher in dict.fromkeys(condition.matchers):
                edges.register(matcher, found)
        return found


class RuleMatcher:
    """The compiled rules of one bus: `matches(event)` returns the keys of every matching rule."""

    def __init__(self) -> None:
        self._patterns: dict[str, CompiledPattern] = {}
        self._root: _Node | None = None
        self._conjunctions: list[tuple[str, Conjunction]] = []
        self._within: frozenset[str] = frozenset()

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
                    for condition in sorted(indexed, key=_selective_first):
                        node = node.child(condition)
                    node.terminals.append(len(self._conjunctions))
                    self._conjunctions.append((key, conjunction))
            # Only the paths some condition names are flattened from an event.
            self._within = prefixes(
                condition.path
                for _, conjunction in self._conjunctions
                for condition in conjunction.conditions
            )
            self._root = root
        return self._root

    def matches(self, event: Mapping[str, Any]) -> set[str]:
        root = self._built()
        flat = flatten(event, self._within)
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


def _selective_first(condition: Condition) -> tuple[int, str]:
    """Conditions that name few values lead, so the trie's first levels are looked up, and the
    broad ones (anything-but, exists) are only tried on the few nodes reached."""
    return max(_breadth(matcher) for matcher in condition.matchers), condition.path


def _breadth(matcher: Matcher) -> int:
    if isinstance(matcher, Exact):
        return 0
    if isinstance(matcher, Numeric):
        low, high = matcher.interval()
        return 1 if low == high else 3
    if isinstance(matcher, Wildcard):
        return 2 if matcher.head or matcher.tail else 4
    if isinstance(matcher, AnythingBut):
        return 5
    if isinstance(matcher, Exists):
        return 6
    return 1
