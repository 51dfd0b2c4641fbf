"""Choice rules: every comparison operator, their *Path forms, Is* tests, And/Or/Not."""

from __future__ import annotations

import fnmatch
import re
from datetime import datetime
from typing import Any

from jetbridge.workflows.asl import paths
from jetbridge.workflows.asl.errors import StatesError

_KINDS = {"String": str, "Numeric": (int, float), "Boolean": bool, "Timestamp": str}
_OPS = ("Equals", "LessThanEquals", "GreaterThanEquals", "LessThan", "GreaterThan", "Matches")
OPERATORS = {
    f"{kind}{op}" for kind in _KINDS for op in _OPS if op != "Matches" or kind == "String"
} - {
    "BooleanLessThan",
    "BooleanGreaterThan",
    "BooleanLessThanEquals",
    "BooleanGreaterThanEquals",
}
TESTS = {"IsNull", "IsPresent", "IsNumeric", "IsString", "IsBoolean", "IsTimestamp"}


def timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}T", value):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def matches(rule: dict[str, Any], data: Any, context: Any) -> bool:
    if "And" in rule:
        return all(matches(r, data, context) for r in rule["And"])
    if "Or" in rule:
        return any(matches(r, data, context) for r in rule["Or"])
    if "Not" in rule:
        return not matches(rule["Not"], data, context)
    variable = rule["Variable"]
    for test in TESTS:
        if test in rule:
            return _test(test, variable, rule[test], data, context)
    for name, operand in rule.items():
        if name in {"Variable", "Next", "Comment"}:
            continue
        operator = name.removesuffix("Path")
        if name.endswith("Path"):
            operand = _condition(data, operand, context)
        return _compare(operator, _condition(data, variable, context), operand)
    raise StatesError("States.Runtime", "choice rule without a comparison")


def _condition(data: Any, path: str, context: Any) -> Any:
    try:
        return paths.read(data, path, context)
    except StatesError:
        raise StatesError(
            "States.Runtime",
            f"Invalid path '{path}': The choice state's condition path references an invalid "
            "value.",
        ) from None


def _test(test: str, variable: str, expected: bool, data: Any, context: Any) -> bool:
    if test == "IsPresent":
        return paths.exists(data, variable, context) == expected
    if not paths.exists(data, variable, context):
        return False
    value = paths.read(data, variable, context)
    checks = {
        "IsNull": value is None,
        "IsNumeric": isinstance(value, int | float) and not isinstance(value, bool),
        "IsString": isinstance(value, str),
        "IsBoolean": isinstance(value, bool),
        "IsTimestamp": timestamp(value) is not None,
    }
    return checks[test] == expected


def _compare(operator: str, value: Any, operand: Any) -> bool:
    kind = next(k for k in _KINDS if operator.startswith(k))
    op = operator[len(kind) :]
    if kind == "Numeric":
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
    elif kind == "Boolean":
        if not isinstance(value, bool):
            return False
    elif not isinstance(value, str):
        return False
    if kind == "Timestamp":
        left, right = timestamp(value), timestamp(operand)
        if left is None or right is None:
            return False
        value, operand = left, right
    if op == "Matches":
        return fnmatch.fnmatchcase(
            value, operand.replace("\\*", "\x00").replace("[", "[[]").replace("\x00", "[*]")
        )
    outcome: bool = {
        "Equals": value == operand,
        "LessThan": value < operand,
        "GreaterThan": value > operand,
        "LessThanEquals": value <= operand,
        "GreaterThanEquals": value >= operand,
    }[op]
    return outcome
