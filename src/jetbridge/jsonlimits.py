"""Bounds on JSON documents taken from outside: nesting depth, number of values, and values that
every later reader can read back (UTF-8 text without lone surrogates, finite numbers).

Checked before anything is stored, so no reader of an event, an execution's input or a rule
later meets a document it cannot decode, render or walk without exhausting the stack.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

Problem = Literal["depth", "values", "text"]


@dataclass(frozen=True, slots=True)
class JsonLimits:
    """`max_depth`: nesting of arrays and objects (`[]` is 1, `[[]]` is 2); `max_elements`:
    values in the document, containers and scalars alike (object keys are not counted)."""

    max_depth: int = 64
    max_elements: int = 100_000


class JsonLimitExceeded(ValueError):
    """A document over a bound, or holding a value a later reader could not read back."""

    def __init__(self, message: str, *, problem: Problem, where: str) -> None:
        self.problem = problem
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


def check_json(value: Any, limits: JsonLimits, *, where: str = "") -> None:
    """Raise JsonLimitExceeded naming where `value` nests too deep, holds too many values, or
    has text UTF-8 cannot carry (a lone surrogate such as `"\\ud800"`) or a non-finite number."""
    count = 0
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(value, 1, ())]
    while stack:
        node, depth, path = stack.pop()
        count += 1
        if count > limits.max_elements:
            raise JsonLimitExceeded(
                f"more than {limits.max_elements} values in one JSON document",
                problem="values",
                where=where,
            )
        if isinstance(node, dict):
            _check_depth(depth, limits, where, path)
            for key, item in node.items():
                _check_text(key, where, path)
                stack.append((item, depth + 1, (*path, key)))
        elif isinstance(node, list | tuple):
            _check_depth(depth, limits, where, path)
            stack.extend((item, depth + 1, (*path, i)) for i, item in enumerate(node))
        elif isinstance(node, str):
            _check_text(node, where, path)
        elif isinstance(node, float) and not math.isfinite(node):
            raise JsonLimitExceeded(
                f"{node} is not a JSON number", problem="text", where=_at(where, path)
            )


def loads_within(data: bytes | str, limits: JsonLimits, *, where: str = "") -> Any:
    """Parse JSON and check it; nesting too deep even for the parser is reported as such.
    Raises ValueError (json.JSONDecodeError, UnicodeDecodeError) for text that is not JSON."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise _too_deep(limits, where) from None
    check_json(value, limits, where=where)
    return value


def _check_depth(depth: int, limits: JsonLimits, where: str, path: tuple[str | int, ...]) -> None:
    if depth > limits.max_depth:
        raise _too_deep(limits, _at(where, path[: limits.max_depth]))


def _too_deep(limits: JsonLimits, where: str) -> JsonLimitExceeded:
    return JsonLimitExceeded(
        f"arrays and objects nested deeper than {limits.max_depth} levels",
        problem="depth",
        where=where,
    )


def _check_text(text: str, where: str, path: tuple[str | int, ...]) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise JsonLimitExceeded(
            f"text holds a lone surrogate (\\u{ord(text[exc.start]):04x}), which is not a "
            "character and cannot be stored",
            problem="text",
            where=_at(where, path),
        ) from None


def _at(where: str, path: tuple[str | int, ...]) -> str:
    shown = where
    for part in path:
        if isinstance(part, int):
            shown += f"[{part}]"
        else:
            name = part[:40].encode("utf-8", "backslashreplace").decode()
            shown += f".{name}" if shown else name
    return shown[:300]


# What a stored document must meet to be shown: any depth the settings allow, any size.
READABLE = JsonLimits(max_depth=512, max_elements=2**62)


def stored_json(data: bytes | str | None, *, where: str = "") -> Any:
    """A stored JSON document as a listing shows it: the value, or `{"unreadable": reason}` when
    it cannot be decoded or rendered (written before validation existed, or by hand)."""
    if data is None:
        return None
    try:
        return loads_within(data, READABLE, where=where)
    except (ValueError, RecursionError) as exc:
        return {"unreadable": _reason(exc, where)}


def _reason(exc: BaseException, where: str) -> str:
    reason = str(exc) or type(exc).__name__
    if not isinstance(exc, JsonLimitExceeded):
        reason = f"{where}: {reason}" if where else reason
    elif len(exc.where) > 100:
        # A deep path would hide the problem: keep its start and the problem itself.
        reason = f"{exc.where[:100]}...: {reason[len(exc.where) + 2 :]}"
    return reason[:500]
