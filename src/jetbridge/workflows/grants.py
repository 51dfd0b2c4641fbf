"""A caller's state machine names only the handlers granted to the caller's tenant."""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from jetbridge.errors import InvalidRequest
from jetbridge.workflows import validate_definition
from jetbridge.workflows.asl.errors import InvalidDefinition
from jetbridge.workflows.asl.resources import check_resources


class _Allowed:
    """Granted handlers, and whatever is not a registered handler at all: the engine's own
    check names those (integrations, unknown resources) with its own message."""

    def __init__(self, granted: Container[str], registered: Container[str]) -> None:
        self.granted, self.registered = granted, registered

    def __contains__(self, name: object) -> bool:
        return name in self.granted or name not in self.registered


def check_granted_resources(
    definition: dict[str, Any] | str,
    granted: Container[str],
    where: str = "",
    *,
    registered: Container[str] = frozenset(),
) -> None:
    """InvalidRequest naming the state whose Task names a registered handler that is not
    granted to the caller's tenant."""
    try:
        body = validate_definition(definition)
    except InvalidDefinition:
        return  # the definition's own validation reports it, with its own message
    try:
        check_resources(body, _Allowed(granted, registered))
    except InvalidDefinition as exc:
        raise InvalidRequest(f"{where}{exc} (not granted to your tenant)") from None
