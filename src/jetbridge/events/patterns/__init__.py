"""The EventBridge event pattern language: validation, single-pattern tests, a compiled index.

from jetbridge.events.patterns import test_event_pattern, InvalidEventPattern, RuleMatcher
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jetbridge.events.patterns.compile import CompiledPattern, parse_pattern
from jetbridge.events.patterns.errors import InvalidEventPattern
from jetbridge.events.patterns.index import RuleMatcher

__all__ = [
    "CompiledPattern",
    "InvalidEventPattern",
    "RuleMatcher",
    "parse_pattern",
    "test_event_pattern",
]


def test_event_pattern(pattern: str | Mapping[str, Any], event: str | Mapping[str, Any]) -> bool:
    """Does `event` match `pattern`? As EventBridge's TestEventPattern.

    Raises `InvalidEventPattern` for an invalid pattern and `ValueError` for an event that is not
    a JSON object.
    """
    compiled = parse_pattern(pattern)
    if isinstance(event, str):
        try:
            event = json.loads(event)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"event is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            ) from None
    if not isinstance(event, Mapping):
        raise ValueError("event must be a JSON object")
    return compiled.matches(event)


test_event_pattern.__test__ = False  # type: ignore[attr-defined]
