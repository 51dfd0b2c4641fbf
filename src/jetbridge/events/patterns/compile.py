"""Parsing and validating patterns, and matching one pattern against one event.

A pattern compiles to a disjunction ($or expanded) of conjunctions; each conjunction is a list of
conditions, one per flattened field path ("detail.gate"), each a disjunction of matchers. Events
are flattened the same way, each leaf value carrying the array elements it came from, so that
fields matched inside one array must come from the same element, as in EventBridge.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jetbridge.events.patterns.errors import InvalidEventPattern
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
from jetbridge.jsonlimits import JsonLimitExceeded, JsonLimits, check_json, loads_within

MAX_DEPTH = 32
PATTERN_LIMITS = JsonLimits()
MAX_VALUES = 10_000
MAX_COMBINATIONS = 1_000
MAX_WILDCARDS = 20
Trail = tuple[tuple[str, int], ...]
FlatEvent = dict[str, list[tuple[Scalar, Trail]]]


@dataclass(frozen=True, slots=True)
class Condition:
    path: str
    matchers: tuple[Matcher, ...]

    @property
    def allows_absence(self) -> bool:
        return any(isinstance(m, Exists) and not m.present for m in self.matchers)

    def accepts(self, value: Scalar) -> bool:
        return any(
            m.matches(value) for m in self.matchers if not isinstance(m, Exists) or m.present
        )


@dataclass(frozen=True, slots=True)
class Conjunction:
    conditions: tuple[Condition, ...]

    def matches(self, flat: FlatEvent) -> bool:
        options: list[list[Trail]] = []
        for condition in self.conditions:
            entries = flat.get(condition.path, [])
            if not entries and condition.allows_absence:
                continue
            trails = [trail for value, trail in entries if condition.accepts(value)]
            if not trails:
                return False
            options.append(trails)
        return _consistent_choice(options, {})


def _consistent_choice(options: list[list[Trail]], chosen: dict[str, int]) -> bool:
    """Pick one trail per condition such that shared arrays use the same element."""
    if not options:
        return True
    first, rest = options[0], options[1:]
    return any(
        all(chosen.get(array, index) == index for array, index in trail)
        and _consistent_choice(rest, chosen | dict(trail))
        for trail in first
    )


@dataclass(frozen=True, slots=True)
class CompiledPattern:
    """A validated pattern; `matches` mirrors EventBridge's TestEventPattern."""

    source: str
    conjunctions: tuple[Conjunction, ...]

    def matches(self, event: Mapping[str, Any]) -> bool:
        flat = flatten(event)
        return any(conjunction.matches(flat) for conjunction in self.conjunctions)


def flatten(event: Any, within: frozenset[str] | None = None) -> FlatEvent:
    """Leaf values per dotted path; each remembers the array elements on its way. With
    `within` (the paths wanted and every dotted prefix of them, see `prefixes`), only those
    paths are walked: their entries are the same, the rest of the event is skipped."""
    flat: FlatEvent = {}
    _flatten(event, "", (), flat, within)
    return flat


def prefixes(paths: Iterable[str]) -> frozenset[str]:
    """The paths and every dotted prefix of each: what `flatten` walks to reach them."""
    found: set[str] = set()
    for path in paths:
        parts = path.split(".")
        found.update(".".join(parts[: n + 1]) for n in range(len(parts)))
    return frozenset(found)


def _flatten(
    node: Any, path: str, trail: Trail, flat: FlatEvent, within: frozenset[str] | None
) -> None:
    if isinstance(node, Mapping):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if within is None or child in within:
                _flatten(value, child, trail, flat, within)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _flatten(item, path, (*trail, (f"{path}#{len(trail)}", index)), flat, within)
    else:
        flat.setdefault(path, []).append((node, trail))


def parse_pattern(pattern: str | Mapping[str, Any] | CompiledPattern) -> CompiledPattern:
    """Validate a pattern (JSON text or object) and compile it."""
    if isinstance(pattern, CompiledPattern):
        return pattern
    try:
        if isinstance(pattern, str):
            body = loads_within(pattern, PATTERN_LIMITS)
            source = pattern
        else:
            check_json(pattern, PATTERN_LIMITS)
            body = pattern
            source = json.dumps(pattern, separators=(",", ":"), default=str)
    except JsonLimitExceeded as exc:
        reason = str(exc).removeprefix(f"{exc.where}: ") if exc.where else str(exc)
        raise InvalidEventPattern(reason, path=exc.where) from None
    except json.JSONDecodeError as exc:
        raise InvalidEventPattern(
            f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise InvalidEventPattern(f"not readable JSON ({str(exc)[:80]})") from None
    if not isinstance(body, Mapping):
        raise InvalidEventPattern("a pattern must be a JSON object")
    if not body:
        raise InvalidEventPattern("a pattern must name at least one field")
    counter = [0]
    conjunctions = [Conjunction(tuple(conditions)) for conditions in _expand(body, "", 0, counter)]
    return CompiledPattern(source, tuple(conjunctions))


def _expand(
    node: Mapping[str, Any], prefix: str, depth: int, counter: list[int]
) -> list[list[Condition]]:
    if depth > MAX_DEPTH:
        raise InvalidEventPattern(f"nested deeper than {MAX_DEPTH} levels", path=prefix)
    results: list[list[Condition]] = [[]]
    for key, value in node.items():
        if not isinstance(key, str) or not key:
            raise InvalidEventPattern("field names must be non-empty strings", path=prefix or "$")
        path = f"{prefix}.{key}" if prefix else key
        if key == "$or":
            alternatives = _or_alternatives(value, prefix, depth, counter)
        elif isinstance(value, Mapping):
            if not value:
                raise InvalidEventPattern("an object in a pattern must not be empty", path=path)
            alternatives = _expand(value, path, depth + 1, counter)
        elif isinstance(value, list):
            alternatives = [[Condition(path, _leaf(value, path, counter))]]
        else:
            raise InvalidEventPattern(
                f"must be an object or an array, got {_kind(value)}", path=path
            )
        results = [existing + extra for existing in results for extra in alternatives]
        if len(results) > MAX_COMBINATIONS:
            raise InvalidEventPattern(
                f"expands to more than {MAX_COMBINATIONS} combinations", path=path
            )
    return results


def _or_alternatives(
    value: Any, prefix: str, depth: int, counter: list[int]
) -> list[list[Condition]]:
    path = f"{prefix}.$or" if prefix else "$or"
    if not isinstance(value, list) or len(value) < 2:
        raise InvalidEventPattern("$or needs an array of at least two patterns", path=path)
    alternatives: list[list[Condition]] = []
    for index, option in enumerate(value):
        if not isinstance(option, Mapping) or not option:
            raise InvalidEventPattern(
                "each $or alternative must be a non-empty object", path=f"{path}[{index}]"
            )
        alternatives.extend(_expand(option, prefix, depth + 1, counter))
    return alternatives


def _leaf(values: list[Any], path: str, counter: list[int]) -> tuple[Matcher, ...]:
    if not values:
        raise InvalidEventPattern("an array in a pattern must not be empty", path=path)
    counter[0] += len(values)
    if counter[0] > MAX_VALUES:
        raise InvalidEventPattern(f"more than {MAX_VALUES} values in one pattern", path=path)
    return tuple(_matcher(value, path) for value in values)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def _matcher(value: Any, path: str) -> Matcher:
    if value is None or isinstance(value, str | bool) or is_number(value):
        return Exact(value_key(value))
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise InvalidEventPattern("numbers must be finite and within a double's range", path=path)
    if isinstance(value, list):
        raise InvalidEventPattern("arrays cannot be nested in a pattern's value list", path=path)
    if not isinstance(value, Mapping) or len(value) != 1:
        raise InvalidEventPattern("an operator object must have exactly one key", path=path)
    ((operator, operand),) = value.items()
    builder = _OPERATORS.get(operator)
    if builder is None:
        raise InvalidEventPattern(f"unrecognized match type {operator!r}", path=path)
    matcher: Matcher = builder(operand, f"{path}.{operator}")
    return matcher


def _text(operand: Any, path: str) -> str:
    if not isinstance(operand, str):
        raise InvalidEventPattern(f"must be a string, got {_kind(operand)}", path=path)
    return operand


def _affix(operand: Any, path: str, kind: type[Prefix] | type[Suffix]) -> Matcher:
    if isinstance(operand, Mapping):
        if set(operand) != {"equals-ignore-case"}:
            raise InvalidEventPattern(
                "the only nested operator allowed here is equals-ignore-case", path=path
            )
        return kind(_text(operand["equals-ignore-case"], f"{path}.equals-ignore-case"), True)
    return kind(_text(operand, path))


def _wildcard(operand: Any, path: str) -> Wildcard:
    text = _text(operand, path)
    if _count_wildcards(text, path) > MAX_WILDCARDS:
        raise InvalidEventPattern(f"more than {MAX_WILDCARDS} wildcards", path=path)
    return Wildcard.compile(text)


def _count_wildcards(text: str, path: str) -> int:
    """Check escapes and consecutive stars as EventBridge does; count the wildcards."""
    stars = position = 0
    previous_star = False
    while position < len(text):
        char = text[position]
        if char == "\\":
            if position + 1 >= len(text) or text[position + 1] not in "*\\":
                raise InvalidEventPattern(
                    f"a backslash may only escape '*' or a backslash (character {position})",
                    path=path,
                )
            position += 2
            previous_star = False
            continue
        if char == "*":
            if previous_star:
                raise InvalidEventPattern(
                    f"consecutive wildcard characters are not allowed (character {position})",
                    path=path,
                )
            stars += 1
        previous_star = char == "*"
        position += 1
    return stars


def _numeric(operand: Any, path: str) -> Numeric:
    if not isinstance(operand, list) or len(operand) not in (2, 4):
        raise InvalidEventPattern(
            "numeric needs [operator, number] or a range of two of them", path=path
        )
    bounds = []
    for index in range(0, len(operand), 2):
        op, bound = operand[index], operand[index + 1]
        if not isinstance(op, str) or op not in {"=", "<", "<=", ">", ">="}:
            raise InvalidEventPattern(f"unrecognized numeric operator {op!r}", path=path)
        if not is_number(bound):
            raise InvalidEventPattern(f"the value after {op!r} must be a number", path=path)
        bounds.append((str(op), float(bound)))
    if len(bounds) == 2:
        (low_op, low), (high_op, high) = bounds
        if low_op not in {">", ">="} or high_op not in {"<", "<="}:
            raise InvalidEventPattern(
                "a numeric range is a lower bound (> or >=) then an upper bound (< or <=)",
                path=path,
            )
        if low >= high:
            raise InvalidEventPattern(
                "the lower bound of a numeric range must be below the upper bound", path=path
            )
    return Numeric(tuple(bounds))


def _exists(operand: Any, path: str) -> Exists:
    if not isinstance(operand, bool):
        raise InvalidEventPattern("exists must be true or false", path=path)
    return Exists(operand)


def _cidr(operand: Any, path: str) -> Cidr:
    text = _text(operand, path)
    try:
        return Cidr(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise InvalidEventPattern(
            f"{text!r} is not an IPv4 or IPv6 CIDR block", path=path
        ) from None


def _anything_but(operand: Any, path: str) -> AnythingBut:
    if isinstance(operand, Mapping):
        return _anything_but_of(operand, path)
    items = operand if isinstance(operand, list) else [operand]
    if not items:
        raise InvalidEventPattern("anything-but needs at least one value", path=path)
    kinds = set()
    for item in items:
        if not (isinstance(item, str) or is_number(item)):
            raise InvalidEventPattern(
                f"anything-but values must be strings or numbers, got {_kind(item)}", path=path
            )
        kinds.add(str if isinstance(item, str) else float)
    if len(kinds) > 1:
        raise InvalidEventPattern(
            "anything-but values must be all strings or all numbers", path=path
        )
    return AnythingBut(tuple(Exact(value_key(item)) for item in items))


def _anything_but_of(operand: Mapping[str, Any], path: str) -> AnythingBut:
    """anything-but over prefix, suffix, equals-ignore-case or wildcard: one string or a list."""
    if len(operand) != 1:
        raise InvalidEventPattern("anything-but takes exactly one nested operator", path=path)
    ((operator, inner),) = operand.items()
    inner_path = f"{path}.{operator}"
    build = _ANYTHING_BUT_INNER.get(operator)
    if build is None:
        raise InvalidEventPattern(
            f"anything-but does not support {operator!r}; it takes a value, a list of values, "
            "or prefix, suffix, equals-ignore-case or wildcard",
            path=path,
        )
    items = inner if isinstance(inner, list) else [inner]
    if not items:
        raise InvalidEventPattern("must not be an empty list", path=inner_path)
    excluded = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidEventPattern(
                f"must be a string or a list of strings, got {_kind(item)}", path=inner_path
            )
        if not item and operator in {"prefix", "suffix"}:
            raise InvalidEventPattern(f"an empty {operator} is not allowed", path=inner_path)
        excluded.append(build(item, inner_path))
    return AnythingBut(tuple(excluded))


_ANYTHING_BUT_INNER: dict[str, Any] = {
    "prefix": lambda text, path: Prefix(text),
    "suffix": lambda text, path: Suffix(text),
    "equals-ignore-case": lambda text, path: EqualsIgnoreCase(text),
    "wildcard": lambda text, path: _wildcard(text, path),
}


_OPERATORS: dict[str, Any] = {
    "prefix": lambda operand, path: _affix(operand, path, Prefix),
    "suffix": lambda operand, path: _affix(operand, path, Suffix),
    "equals-ignore-case": lambda operand, path: EqualsIgnoreCase(_text(operand, path)),
    "wildcard": _wildcard,
    "numeric": _numeric,
    "exists": _exists,
    "cidr": _cidr,
    "anything-but": _anything_but,
}
