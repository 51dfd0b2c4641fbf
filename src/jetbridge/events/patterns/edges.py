"""The matchers leaving one trie node on one field, indexed by the values they can accept.

Each operator has a lookup whose cost follows the matchers that can accept the event's value,
not how many there are: exact values and equals-ignore-case by hash, prefixes and suffixes by
looking up the value's own prefixes and suffixes (of the lengths in use), numeric ranges in an
interval tree, CIDR blocks by the masked address per prefix length in use, wildcards by their
longest literal head or tail, anything-but by the complement of the values it excludes. Every
candidate other than an exact value is confirmed with the matcher itself, so an index narrows
the search and never changes an answer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from jetbridge.events.patterns.intervals import IntervalTree
from jetbridge.events.patterns.matchers import (
    AnythingBut,
    Cidr,
    EqualsIgnoreCase,
    Exact,
    Exists,
    Matcher,
    Numeric,
    Prefix,
    Scalar,
    Suffix,
    Wildcard,
    is_number,
    value_key,
)

Child = TypeVar("Child")
Entry = tuple[Matcher, Any]


@dataclass(eq=False)
class _Affixes:
    """Prefixes (or suffixes) by text, with the lengths in use."""

    by_text: dict[str, list[Entry]] = field(default_factory=dict)
    lengths: set[int] = field(default_factory=set)

    def add(self, text: str, entry: Entry) -> None:
        self.by_text.setdefault(text, []).append(entry)
        self.lengths.add(len(text))

    def starting(self, value: str) -> Iterable[Entry]:
        for length in self.lengths:
            if length <= len(value):
                yield from self.by_text.get(value[:length], ())

    def ending(self, value: str) -> Iterable[Entry]:
        for length in self.lengths:
            if length <= len(value):
                yield from self.by_text.get(value[len(value) - length :], ())


@dataclass(eq=False)
class _Complements:
    """anything-but over exact values: every entry, less those excluding the value."""

    entries: list[Entry] = field(default_factory=list)
    excluding: dict[tuple[str, Any], set[int]] = field(default_factory=dict)

    def add(self, matcher: AnythingBut, entry: Entry) -> None:
        for excluded in matcher.excluded:
            if isinstance(excluded, Exact):
                self.excluding.setdefault(excluded.key, set()).add(len(self.entries))
        self.entries.append(entry)

    def accepting(self, value: Scalar) -> Iterable[Entry]:
        out = self.excluding.get(value_key(value), ())
        return (entry for number, entry in enumerate(self.entries) if number not in out)


@dataclass(eq=False)
class Edges(Generic[Child]):
    """All the matchers on one field leaving one node, each leading to a child node."""

    exact: dict[tuple[str, Any], list[Child]] = field(default_factory=dict)
    folded: dict[str, list[Entry]] = field(default_factory=dict)
    prefixes: _Affixes = field(default_factory=_Affixes)
    folded_prefixes: _Affixes = field(default_factory=_Affixes)
    suffixes: _Affixes = field(default_factory=_Affixes)
    folded_suffixes: _Affixes = field(default_factory=_Affixes)
    ranges: IntervalTree[Entry] = field(default_factory=IntervalTree)
    networks: dict[tuple[int, int, int], list[Entry]] = field(default_factory=dict)
    network_lengths: set[tuple[int, int]] = field(default_factory=set)
    complements: _Complements = field(default_factory=_Complements)
    present: list[Child] = field(default_factory=list)
    scanned: list[Entry] = field(default_factory=list)

    def register(self, matcher: Matcher, child: Child) -> None:
        entry: Entry = (matcher, child)
        if isinstance(matcher, Exact):
            self.exact.setdefault(matcher.key, []).append(child)
        elif isinstance(matcher, Exists):
            self.present.append(child)
        elif isinstance(matcher, EqualsIgnoreCase):
            self.folded.setdefault(matcher.text.casefold(), []).append(entry)
        elif isinstance(matcher, Prefix):
            target = self.folded_prefixes if matcher.ignore_case else self.prefixes
            target.add(matcher.text.casefold() if matcher.ignore_case else matcher.text, entry)
        elif isinstance(matcher, Suffix):
            target = self.folded_suffixes if matcher.ignore_case else self.suffixes
            target.add(matcher.text.casefold() if matcher.ignore_case else matcher.text, entry)
        else:
            self._register_other(matcher, entry)

    def _register_other(self, matcher: Matcher, entry: Entry) -> None:
        if isinstance(matcher, Numeric):
            low, high = matcher.interval()
            self.ranges.add(low, high, entry)
        elif isinstance(matcher, Cidr):
            network = matcher.network
            key = (network.version, network.prefixlen, int(network.network_address))
            self.networks.setdefault(key, []).append(entry)
            self.network_lengths.add((network.version, network.prefixlen))
        elif isinstance(matcher, Wildcard) and (matcher.head or matcher.tail):
            if len(matcher.head) >= len(matcher.tail):
                self.prefixes.add(matcher.head, entry)
            else:
                self.suffixes.add(matcher.tail, entry)
        elif isinstance(matcher, AnythingBut) and all(
            isinstance(excluded, Exact) for excluded in matcher.excluded
        ):
            self.complements.add(matcher, entry)
        else:
            self.scanned.append(entry)

    def follow(self, values: list[Scalar], out: list[Child]) -> None:
        """Add to `out` the child of every matcher accepting one of `values`."""
        out.extend(self.present)
        for value in values:
            if self.exact:
                out.extend(self.exact.get(value_key(value), ()))
            for matcher, child in self._candidates(value):
                if matcher.matches(value):
                    out.append(child)

    def _candidates(self, value: Scalar) -> Iterable[Entry]:
        if isinstance(value, str):
            if self.prefixes.lengths:
                yield from self.prefixes.starting(value)
            if self.suffixes.lengths:
                yield from self.suffixes.ending(value)
            if self.folded or self.folded_prefixes.lengths or self.folded_suffixes.lengths:
                folded = value.casefold()
                yield from self.folded.get(folded, ())
                yield from self.folded_prefixes.starting(folded)
                yield from self.folded_suffixes.ending(folded)
            if self.networks:
                yield from self._networks(value)
        elif self.ranges and is_number(value):
            yield from self.ranges.containing(float(value))  # type: ignore[arg-type]
        if self.complements.entries:
            yield from self.complements.accepting(value)
        yield from self.scanned

    def _networks(self, value: str) -> Iterable[Entry]:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return
        number = int(address)
        bits = address.max_prefixlen
        for version, length in self.network_lengths:
            if version == address.version:
                masked = number >> (bits - length) << (bits - length) if length else 0
                yield from self.networks.get((version, length, masked), ())
