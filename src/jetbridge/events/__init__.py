"""The event backbone: envelope, pattern language, buses, rules, targets and delivery.

Public API: `test_event_pattern(pattern, event) -> bool` and `InvalidEventPattern`.
"""

from jetbridge.events.patterns import InvalidEventPattern, test_event_pattern

__all__ = ["InvalidEventPattern", "test_event_pattern"]
