"""Whose state machine an execution runs: a caller's, or one of the platform's own.

Callers' executions (started through the API or CLI, or by a rule's workflow target) reach
only the public handlers and the built-in integrations. A system machine such as the booking
saga has handlers of its own that no other machine can reach, and its executions, named with
its prefix, are started, stopped and answered by the platform alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jetbridge.errors import Forbidden

# Machines of executions callers start: through the API or CLI, and from rules' targets.
CALLER_MACHINES = frozenset({"machine", "rule"})
Handler = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class SystemMachine:
    """A state machine the platform runs for itself: its handlers serve it alone, and its
    executions are named `prefix...`."""

    name: str
    prefix: str
    handlers: Mapping[str, Handler]


def refuse_caller_start(systems: Mapping[str, SystemMachine], *, name: str, machine: str) -> None:
    """Forbidden unless a caller may start an execution `name` of `machine`."""
    if machine not in CALLER_MACHINES:
        raise Forbidden(f"machine: {machine!r} is not a state machine callers may start")
    for system in systems.values():
        if name.startswith(system.prefix):
            raise Forbidden(
                f"name: execution names starting with {system.prefix!r} belong to the "
                f"platform's {system.name} state machine"
            )
