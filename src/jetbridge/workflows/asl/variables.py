"""Workflow variables (`Assign`, read as `$name`): evaluated from the state's result with the
values from before the state, visible from the next state on. A Map iteration or a Parallel
branch starts with a copy of the variables around it, so what it assigns stays inside it."""

from __future__ import annotations

import json
from typing import Any

from jetbridge.workflows.asl.paths import VARIABLES


def assign(context: dict[str, Any], assigned: dict[str, Any]) -> None:
    """Make `assigned` visible to the states that follow (a new mapping: copies held by inner
    scopes are not affected)."""
    if assigned:
        context[VARIABLES] = {**context.get(VARIABLES, {}), **assigned}


def details(assigned: dict[str, Any]) -> dict[str, Any]:
    """The StateExited details that record assignments, as Step Functions shows them."""
    return {
        "assignedVariables": {name: json.dumps(value) for name, value in assigned.items()},
        "assignedVariablesDetails": {"truncated": False},
    }


def recorded(event: dict[str, Any] | None, assigned: dict[str, Any]) -> dict[str, Any]:
    """On a resumed run, the values the earlier run assigned (a random or unique value
    assigned before stays the same); otherwise the values just evaluated."""
    exited = (event or {}).get("stateExitedEventDetails") or {}
    if "assignedVariables" not in exited:
        return assigned
    return {name: json.loads(text) for name, text in exited["assignedVariables"].items()}
