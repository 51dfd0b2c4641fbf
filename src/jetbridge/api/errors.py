"""Error responses: every failure is a 4xx with a message naming what was wrong and where."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
from jetbridge.events.envelope import InvalidEvent
from jetbridge.events.patterns import InvalidEventPattern
from jetbridge.workflows import InvalidDefinition

log = logging.getLogger(__name__)


def error_body(status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status)


def _location(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path or "body"


def describe_validation(exc: RequestValidationError) -> tuple[str, list[dict[str, str]]]:
    details = []
    for item in exc.errors():
        where = _location(tuple(item.get("loc", ())))
        details.append({"location": where, "message": in_words(dict(item))})
    summary = "; ".join(f"{d['location']}: {d['message']}" for d in details[:5])
    return summary, details


ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "the kind, e.g. ValidationError"},
        "message": {"type": "string", "description": "what was wrong and where"},
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["location", "message"],
                "properties": {"location": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


def document_errors(app: FastAPI) -> None:
    """Describe 422 answers in the OpenAPI document as the API gives them (`ERROR_SCHEMA`)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schemas = generate().get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = ERROR_SCHEMA
                schemas.pop("ValidationError", None)
        return generate()  # FastAPI keeps the document it made, changes included

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    async def validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        summary, details = describe_validation(exc)
        if any(item.get("type") == "json_invalid" for item in exc.errors()):
            return error_body(400, "MalformedJSON", summary, details=details)
        return error_body(422, "ValidationError", summary, details=details)

    def simple(status: int, name: str) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
        async def handler(_: Request, exc: Exception) -> JSONResponse:
            return error_body(status, name, str(exc))

        return handler

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return error_body(exc.status_code, "HTTPError", str(exc.detail))

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        # A transient database error never gets here: DatabaseOutage (api/outage.py) answers it.
        log.exception("unexpected error", exc_info=exc)
        return error_body(500, "InternalError", "an unexpected error occurred; it has been logged")

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(InvalidEvent, simple(400, "InvalidEvent"))
    app.add_exception_handler(InvalidEventPattern, simple(400, "InvalidEventPattern"))
    app.add_exception_handler(InvalidRequest, simple(400, "InvalidRequest"))
    app.add_exception_handler(InvalidDefinition, simple(400, "InvalidDefinition"))
    app.add_exception_handler(NotFound, simple(404, "NotFound"))
    app.add_exception_handler(Conflict, simple(409, "Conflict"))
    app.add_exception_handler(Forbidden, simple(403, "Forbidden"))
    app.add_exception_handler(Unprocessable, simple(422, "Unprocessable"))

    async def unauthenticated(_: Request, exc: Exception) -> JSONResponse:
        response = error_body(401, "Unauthenticated", str(exc))
        response.headers["WWW-Authenticate"] = 'Bearer realm="jetbridge"'
        return response

    async def too_many(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TooManyRequests)
        response = error_body(429, "TooManyRequests", str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    app.add_exception_handler(Unauthenticated, unauthenticated)
    app.add_exception_handler(TooManyRequests, too_many)
    app.add_exception_handler(Exception, unexpected)
    document_errors(app)


class BodySizeLimit:
    """Reject request bodies over `limit` bytes with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and (
            not declared.isdigit() or len(declared) > 18 or int(declared) > self.limit
        ):
            await self._reject(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_body(413, "PayloadTooLarge", f"request body exceeds {self.limit} bytes")
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def _content_length(scope: Scope) -> bytes | None:
    """The Content-Length header as sent (the last one, if repeated), without copying them all."""
    found = None
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            found = value
    return found
