"""ASL errors: failures carry an ASL error name; invalid definitions name the state and field."""

from __future__ import annotations


class StatesError(Exception):
    """A failure with an ASL error name (`States.Runtime`, a task's own error, ...)."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}" if cause else error)
        self.error = error
        self.cause = cause
        self.located = False  # whether the cause already names the state it happened in


class InvalidDefinition(ValueError):
    """A state machine definition that cannot run; the message names the state and the field."""


class TaskFailed(Exception):
    """Raise from a handler to fail a task with a chosen ASL error name and cause."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(cause or error)
        self.error = error
        self.cause = cause
