"""Leaf matchers: one operator of a pattern, tested against one scalar value of an event."""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from typing import Any

Scalar = str | int | float | bool | None


def value_key(value: Scalar) -> tuple[str, Any]:
    """Hashable identity used by exact matching: numbers compare by value, never equal to bools."""
    if value is None:
        return ("z", None)
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, float):
        return ("n", value)
    if isinstance(value, int):
        # Integers beyond a double's range match only themselves, exactly.
        return ("n", float(value)) if is_number(value) else ("i", value)
    return ("s", value)


def is_number(value: Any) -> bool:
    """A JSON number that compares as a finite double (bools and huge integers are not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, int):
        return abs(value) <= _LARGEST_DOUBLE
    return math.isfinite(value)


_LARGEST_DOUBLE = int(2.0**1023 * (2 - 2.0**-52))


class Matcher:
    """Base class; `exact_key` is set for matchers an index can look up by value."""

    exact_key: tuple[str, Any] | None = None

    def matches(self, value: Scalar) -> bool:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Exact(Matcher):
    key: tuple[str, Any]

    @property
    def exact_key(self) -> tuple[str, Any]:  # type: ignore[override]
        return self.key

    def matches(self, value: Scalar) -> bool:
        return value_key(value) == self.key


@dataclass(frozen=True, slots=True)
class Prefix(Matcher):
    text: str
    ignore_case: bool = False

    def matches(self, value: Scalar) -> bool:
        if not isinstance(value, str):
            return False
        if self.ignore_case:
            return value.casefold().startswith(self.text.casefold())
        return value.startswith(self.text)


@dataclass(frozen=True, slots=True)
class Suffix(Matcher):
    text: str
    ignore_case: bool = False

    def matches(self, value: Scalar) -> bool:
        if not isinstance(value, str):
            return False
        if self.ignore_case:
            return value.casefold().endswith(self.text.casefold())
        return value.endswith(self.text)


@dataclass(frozen=True, slots=True)
class EqualsIgnoreCase(Matcher):
    text: str

    def matches(self, value: Scalar) -> bool:
        return isinstance(value, str) and value.casefold() == self.text.casefold()


@dataclass(frozen=True, slots=True)
class Wildcard(Matcher):
    """`*` matches any run of characters; `head` and `tail` are the literal ends, for indexes."""

    regex: re.Pattern[str]
    head: str = ""
    tail: str = ""

    @classmethod
    def compile(cls, text: str) -> Wildcard:
        pieces: list[str | None] = []  # literal characters, None for a wildcard
        position = 0
        while position < len(text):
            char = text[position]
            if char == "\\" and position + 1 < len(text) and text[position + 1] in "*\\":
                pieces.append(text[position + 1])
                position += 2
                continue
            pieces.append(None if char == "*" else char)
            position += 1
        regex = "".join(".*" if piece is None else re.escape(piece) for piece in pieces)
        stars = [number for number, piece in enumerate(pieces) if piece is None]
        if not stars:
            return cls(re.compile(regex, re.DOTALL), "".join(pieces), "")  # type: ignore[arg-type]
        head = "".join(pieces[: stars[0]])  # type: ignore[arg-type]
        tail = "".join(pieces[stars[-1] + 1 :])  # type: ignore[arg-type]
        return cls(re.compile(regex, re.DOTALL), head, tail)

    def matches(self, value: Scalar) -> bool:
        return isinstance(value, str) and self.regex.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Numeric(Matcher):
    """A conjunction of (operator, bound) comparisons."""

    bounds: tuple[tuple[str, float], ...]

    def matches(self, value: Scalar) -> bool:
        if not is_number(value):
            return False
        number = float(value)  # type: ignore[arg-type]
        return all(_compare(number, op, bound) for op, bound in self.bounds)

    def interval(self) -> tuple[float, float]:
        """The closed interval holding every accepted number (strictness is left to `matches`)."""
        low, high = -math.inf, math.inf
        for op, bound in self.bounds:
            if op in {">", ">=", "="}:
                low = max(low, bound)
            if op in {"<", "<=", "="}:
                high = min(high, bound)
        return low, high


def _compare(number: float, op: str, bound: float) -> bool:
    if op == "=":
        return number == bound
    if op == "<":
        return number < bound
    if op == "<=":
        return number <= bound
    if op == ">":
        return number > bound
    return number >= bound


@dataclass(frozen=True, slots=True)
class Cidr(Matcher):
    network: ipaddress.IPv4Network | ipaddress.IPv6Network

    def matches(self, value: Scalar) -> bool:
        if not isinstance(value, str):
            return False
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return False
        return address.version == self.network.version and address in self.network


@dataclass(frozen=True, slots=True)
class AnythingBut(Matcher):
    """Matches any present value (null, booleans and numbers too) unless an inner matcher
    accepts it; string operators inside never accept a number or null, as in EventBridge."""

    excluded: tuple[Matcher, ...]

    def matches(self, value: Scalar) -> bool:
        return not any(inner.matches(value) for inner in self.excluded)


@dataclass(frozen=True, slots=True)
class Exists(Matcher):
    """exists: true matches any value at the path; exists: false is checked by absence."""

    present: bool

    def matches(self, value: Scalar) -> bool:
        return self.present
