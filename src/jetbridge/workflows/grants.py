"""A caller's state machine names only the handlers granted to the caller's tenant."""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from jetbridge.errors import InvalidRequest
from jetbridge.workflows import validate_definition
from jetbridge.workflows.asl.errors import InvalidDefinition
from jetbridge.workflows.asl.resources import check_resources


def check_granted_resources(
    definition: dict[str, Any] | str, granted: Container[str], where: str = ""
) -> None:
    """InvalidRequest naming the state whose Task names a handler outside `granted`."""
    try:
        body = validate_definition(definition)
    except InvalidDefinition:
        return  # the definition's own validation reports it, with its own message
    try:
        check_resources(body, granted)
    except InvalidDefinition as exc:
        raise InvalidRequest(f"{where}{exc} (not granted to your tenant)") from None
