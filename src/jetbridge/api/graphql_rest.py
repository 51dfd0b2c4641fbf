"""GraphQL fields answer through the REST routes' own functions: the same policy (read from the
route's declaration), the same validation (the route's parameter types and body models), the
same visibility rules and the same errors, which become GraphQL errors with a code.

Callers' mistakes are answered, never logged as server errors; anything else is logged once and
answered with a plain message, so no traceback reaches a client."""

from __future__ import annotations

import inspect
import logging
import typing
from collections.abc import Callable
from functools import cache
from typing import Any

from fastapi import Response
from graphql import GraphQLError
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import HTTPConnection

from jetbridge.api.disruption import DisruptionDep, disruption_of
from jetbridge.api.policy import Policy, Require
from jetbridge.api.wording import in_words
from jetbridge.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    TooManyRequests,
    Unauthenticated,
    Unprocessable,
)
from jetbridge.storage.transient import is_transient

log = logging.getLogger(__name__)

CODES: tuple[tuple[type[Exception], str], ...] = (
    (Unauthenticated, "UNAUTHENTICATED"),
    (Forbidden, "FORBIDDEN"),
    (NotFound, "NOT_FOUND"),
    (Conflict, "CONFLICT"),
    (Unprocessable, "UNPROCESSABLE"),
    (InvalidRequest, "BAD_USER_INPUT"),
    (TooManyRequests, "TOO_MANY_REQUESTS"),
)


def as_graphql_error(exc: Exception) -> GraphQLError:
    """The GraphQL error a client sees for `exc`, with `extensions.code`."""
    if isinstance(exc, GraphQLError):
        return exc
    if isinstance(exc, ValidationError):
        return validation_error(exc)
    for kind, code in CODES:
        if isinstance(exc, kind):
            return GraphQLError(str(exc), extensions={"code": code})
    if is_transient(exc):
        return GraphQLError(
            "the database is briefly unavailable; retry shortly",
            extensions={"code": "UNAVAILABLE"},
        )
    log.error("unexpected error in a GraphQL field", exc_info=exc)
    return GraphQLError(
        "an unexpected error occurred; it has been logged", extensions={"code": "INTERNAL"}
    )


def validation_error(exc: ValidationError, prefix: str = "") -> GraphQLError:
    """Pydantic's errors in words, located by the GraphQL argument (camelCase) they came from."""
    details = []
    for item in exc.errors():
        where = _location((prefix, *item.get("loc", ())) if prefix else item.get("loc", ()))
        details.append({"location": where, "message": in_words(dict(item))})
    message = "; ".join(f"{d['location']}: {d['message']}" for d in details[:5])
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT", "details": details})


def _location(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else ("." if path else "") + _camel(str(part))
    return path or "input"


@cache
def _parameters(endpoint: Callable[..., Any]) -> dict[str, Any]:
    return typing.get_type_hints(endpoint, include_extras=True)


def policy_of(endpoint: Callable[..., Any]) -> Policy:
    """The policy the REST route declares on its caller parameter."""
    for hint in _parameters(endpoint).values():
        for meta in getattr(hint, "__metadata__", ()):
            dependency = getattr(meta, "dependency", None)
            if isinstance(dependency, Require):
                return dependency.policy
    raise TypeError(f"{endpoint.__name__} declares no policy")


def _checked(endpoint: Callable[..., Any], name: str, value: Any, label: str) -> Any:
    hint = _parameters(endpoint)[name]
    base = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
    try:
        if inspect.isclass(base) and issubclass(base, BaseModel):
            return base.model_validate(value)
        return _adapter(hint).validate_python(value)
    except ValidationError as exc:
        raise validation_error(exc, label) from None


@cache
def _adapter(hint: Any) -> TypeAdapter[Any]:
    return TypeAdapter(hint)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def call(
    connection: HTTPConnection,
    endpoint: Callable[..., Any],
    *,
    principal: Any = None,
    labels: dict[str, str] | None = None,
    **given: Any,
) -> Any:
    """Run a REST route's function for a GraphQL field: its policy decides the caller, its
    parameter types check `given`; the platform's services fill the rest. Errors name a
    parameter by its GraphQL argument (`labels`: REST name to argument, "" for the fields of
    a body given as separate arguments)."""
    platform = connection.app.state.platform
    if principal is None:
        principal = Require(policy_of(endpoint))(connection)
    arguments: dict[str, Any] = {}
    for name, hint in _parameters(endpoint).items():
        if name == "return":
            continue
        if name in given:
            label = (labels or {}).get(name, name)
            value = given[name]
            arguments[name] = None if value is None else _checked(endpoint, name, value, label)
        elif name == "request":
            arguments[name] = connection
        elif name == "response":
            arguments[name] = Response()
        elif name == "bookings":
            arguments[name] = platform.bookings
        elif name == "backbone":
            arguments[name] = platform.backbone
        elif name == "service" and hint == DisruptionDep:
            arguments[name] = disruption_of(platform)
        elif any(
            isinstance(getattr(meta, "dependency", None), Require)
            for meta in getattr(hint, "__metadata__", ())
        ):
            arguments[name] = principal
    return endpoint(**arguments)
