"""Which code a Task's Resource reaches: the built-in integrations, or a handler by name.

A state machine only reaches the handlers its engine gives it; `check_resources` refuses, before
anything runs, a definition whose Task names a handler outside that set.
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from typing import Any

from jetbridge.workflows.asl.errors import InvalidDefinition
from jetbridge.workflows.asl.jsonata import is_expression

HTTP_RESOURCE = "arn:aws:states:::http:invoke"
NESTED = "arn:aws:states:::states:startExecution"
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"


def handler_names(resource: str) -> tuple[str, str]:
    """The names a resource may be registered under: the exact string, else the function name at
    the ARN's end (`arn:aws:lambda:...:function:ReserveSeat` is `ReserveSeat`)."""
    return resource, resource.rsplit(":", 1)[-1].removesuffix(".waitForTaskToken")


def integration(resource: str) -> bool:
    """An integration every state machine may use (HTTP and nested executions)."""
    return resource == HTTP_RESOURCE or resource.startswith(NESTED)


def check_resources(definition: dict[str, Any], handlers: Container[str]) -> None:
    """Every Task of a validated definition names an integration or one of `handlers`;
    InvalidDefinition names the first state that does not."""
    for where, state in _tasks(definition, ""):
        resource = state["Resource"]
        if integration(resource) or resource in handlers:
            continue
        parameters = state.get("Parameters", state.get("Arguments"))
        if resource.startswith(LAMBDA_INVOKE) and isinstance(parameters, dict):
            function = parameters.get("FunctionName")
            if "FunctionName.$" in parameters or is_expression(function):
                continue  # chosen at run time, still only among the machine's handlers
            if isinstance(function, str) and any(n in handlers for n in handler_names(function)):
                continue
            resource = function if isinstance(function, str) else resource
        elif any(name in handlers for name in handler_names(resource)):
            continue
        raise InvalidDefinition(
            f"{where}.Resource: {resource!r} is not a handler this state machine may use "
            "(registered handlers by name, http:invoke and states:startExecution)"
        )


def _tasks(definition: dict[str, Any], prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in definition["States"].items():
        where = f"{prefix}States.{name}"
        kind = state["Type"]
        if kind == "Task":
            yield where, state
        elif kind == "Parallel":
            for index, branch in enumerate(state["Branches"]):
                yield from _tasks(branch, f"{where}.Branches[{index}].")
        elif kind == "Map":
            processor = state.get("ItemProcessor", state.get("Iterator"))
            yield from _tasks(processor, f"{where}.ItemProcessor.")
