"""The EventBridge event pattern language: validation, single-pattern tests, a compiled index.

from jetbridge.events.patterns import test_event_pattern, InvalidEventPattern, RuleMatcher
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jetbridge.errors import InvalidRequest
from jetbridge.events.patterns.compile import CompiledPattern, parse_pattern
from jetbridge.events.patterns.errors import InvalidEventPattern
from jetbridge.events.patterns.index import RuleMatcher
from jetbridge.jsonlimits import JsonLimitExceeded, JsonLimits, loads_within

__all__ = [
    "CompiledPattern",
    "InvalidEventPattern",
    "RuleMatcher",
    "parse_pattern",
    "test_event_pattern",
]


def test_event_pattern(pattern: str | Mapping[str, Any], event: str | Mapping[str, Any]) -> bool:
    """Does `event` match `pattern`? As EventBridge's TestEventPattern.

    Raises `InvalidEventPattern` for an invalid pattern and `InvalidRequest` (a ValueError) for
    an event that is not a JSON object.
    """
    compiled = parse_pattern(pattern)
    if isinstance(event, str):
        try:
            event = loads_within(event, JsonLimits(), where="event")
        except JsonLimitExceeded as exc:
            raise InvalidRequest(str(exc)) from None
        except json.JSONDecodeError as exc:
            raise InvalidRequest(
                f"event: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            ) from None
        except ValueError as exc:
            raise InvalidRequest(f"event: not readable JSON ({str(exc)[:80]})") from None
    if not isinstance(event, Mapping):
        raise InvalidRequest(f"event: must be a JSON object, not {type(event).__name__}")
    return compiled.matches(event)


test_event_pattern.__test__ = False  # type: ignore[attr-defined]
