"""Counts, times and traces every HTTP request by its route template (never the raw path, whose
ids would make a series per booking; nor the query, which may hold personal data)."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jetbridge.api.policy import iter_routes
from jetbridge.ops import metrics, tracing
from jetbridge.ops.logs import CORRELATION, correlation_from

UNMATCHED = "unmatched"


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._templates: dict[int, str] | None = None
        # Each series' counter and histogram, found once: labels() takes a lock every time.
        self._series: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()
        method = scope["method"]
        incoming, request_id = _trace_headers(scope)
        CORRELATION.set(correlation_from(request_id))

        def observe(message: Message) -> Awaitable[None]:
            # A plain function handing back the server's own awaitable: no coroutine per chunk.
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            return send(message)

        with tracing.span(
            f"HTTP {method}",
            traceparent=incoming,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method},
        ) as span:
            try:
                await self.app(scope, receive, observe)
            finally:
                route = self._template(scope)
                requests, latency = self._series_of(route, method, status)
                requests.inc()
                latency.observe(time.perf_counter() - started)
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))

    def _series_of(self, route: str, method: str, status: int) -> tuple[Any, Any]:
        key = (route, method, str(status))
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = (
                metrics.API_REQUESTS.labels(*key),
                metrics.API_LATENCY.labels(route, method),
            )
        return found

    def _template(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            return UNMATCHED
        if self._templates is None:
            self._templates = _templates(scope["app"].routes)
        found = self._templates.get(id(route))
        if found is not None:
            return found
        path = getattr(route, "path", None)
        return str(path) if path else UNMATCHED


def _templates(routes: Any) -> dict[int, str]:
    """Each route object's full path template, through included routers and mounts."""
    found: dict[int, str] = {}
    for path, route in iter_routes(routes):
        found[id(route)] = path + ("/{path}" if isinstance(route, Mount) else "")
    return found


def _trace_headers(scope: Scope) -> tuple[str | None, str | None]:
    """The request's first traceparent and X-Request-Id headers, found in one pass."""
    traceparent = request_id = None
    for key, value in scope.get("headers", ()):
        if key == b"traceparent" and traceparent is None:
            traceparent = bytes(value).decode("latin-1")
        elif key == b"x-request-id" and request_id is None:
            request_id = bytes(value).decode("latin-1")
    return traceparent, request_id
