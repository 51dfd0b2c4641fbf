"""The HTTP task (`arn:aws:states:::http:invoke`) over the outbound client: ApiEndpoint,
Method, Headers, QueryParameters, RequestBody in; StatusCode, StatusText, Headers,
ResponseBody out. Internal addresses are refused unless the policy allows them."""

from __future__ import annotations

import json
from typing import Any

import httpx

from jetbridge.ops.outbound import OutboundPolicy, OutboundRefused, sync_client
from jetbridge.ops.tracing import current_traceparent
from jetbridge.workflows.asl.errors import StatesError
from jetbridge.workflows.asl.scope import Handler

TIMEOUT_SECONDS = 60.0


def http_invoke(policy: OutboundPolicy, *, timeout: float = TIMEOUT_SECONDS) -> Handler:
    """The HTTP task's handler, reaching only what `policy` admits."""

    def invoke(payload: Any) -> Any:
        if not isinstance(payload, dict) or not isinstance(payload.get("ApiEndpoint"), str):
            raise StatesError("States.Runtime", "an HTTP task needs Parameters.ApiEndpoint")
        with sync_client(policy, timeout=timeout) as client:
            response = _send(client, payload)
        return _result(response)

    return invoke


def _send(client: httpx.Client, payload: dict[str, Any]) -> httpx.Response:
    body = payload.get("RequestBody")
    headers = {str(k): str(v) for k, v in (payload.get("Headers") or {}).items()}
    traceparent = current_traceparent()
    if traceparent is not None and not any(k.lower() == "traceparent" for k in headers):
        headers["traceparent"] = traceparent  # the receiver, and its callback, join the trace
    try:
        return client.request(
            str(payload.get("Method", "GET")).upper(),
            payload["ApiEndpoint"],
            headers=headers,
            params=payload.get("QueryParameters") or None,
            json=body if body is not None and not isinstance(body, str) else None,
            content=body if isinstance(body, str) else None,
        )
    except OutboundRefused as exc:
        raise StatesError("States.Http.Refused", str(exc)) from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise StatesError("States.Http.Socket", str(exc)) from None


def _result(response: httpx.Response) -> dict[str, Any]:
    try:
        parsed: Any = response.json()
    except ValueError:
        parsed = response.text
    result = {
        "StatusCode": response.status_code,
        "StatusText": response.reason_phrase,
        "Headers": dict(response.headers),
        "ResponseBody": parsed,
    }
    if response.status_code >= 300:
        raise StatesError(f"States.Http.StatusCode.{response.status_code}", json.dumps(result))
    return result


def http_task(payload: Any) -> Any:
    """The HTTP task where no handler is registered for it: no internal address is reachable."""
    return http_invoke(OutboundPolicy())(payload)
