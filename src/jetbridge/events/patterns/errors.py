"""The public error of the pattern language."""

from __future__ import annotations


class InvalidEventPattern(ValueError):
    """A pattern EventBridge would reject; the message names the path and the reason."""

    def __init__(self, reason: str, *, path: str = "") -> None:
        self.path = path
        self.reason = reason
        where = f" at {path}" if path else ""
        super().__init__(f"Event pattern is not valid{where}: {reason}")
