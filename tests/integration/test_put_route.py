"""The put route's two ways, over real HTTP: a well-formed put (`application/json`, a JSON
object of `entries` alone) takes the short way, anything else the general one, and both give the
same answers, refusals, headers and metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from jetbridge.app import create_app
from jetbridge.config import Settings
from support.auth import api_key
from support.servers import serve_app

ROUTE = "/api/buses/{bus}/events"
SHORT = "application/json"  # the short way
GENERAL = "application/json; charset=utf-8"  # the same body, the general way


def event(name: str, **changes: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": name,
        "source": "test.flights",
        "type": "flight.gate_changed",
        "data": {"gate": "A12"},
        **changes,
    }


@pytest.fixture
def served(database_url: str) -> Iterator[tuple[Any, str]]:
    app = create_app(Settings(database_url=database_url, run_workers=False))
    with serve_app(app) as base:
        yield app, base


def put(base: str, body: Any, content_type: str | None, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{base}/api/buses/default/events", content=content, headers=headers)


def answered(status: int) -> float:
    found = REGISTRY.get_sample_value(
        "jetbridge_api_requests_total", {"route": ROUTE, "method": "POST", "status": str(status)}
    )
    return found or 0.0


def test_both_ways_store_and_answer_alike(served: tuple[Any, str]) -> None:
    app, base = served
    key = api_key(app)
    before = answered(200)
    short = put(base, {"entries": [event("e-1")]}, SHORT, key)
    general = put(base, {"entries": [event("e-2")]}, GENERAL, key)
    again = put(base, {"entries": [event("e-1")]}, SHORT, key)
    assert short.status_code == general.status_code == again.status_code == 200
    first, second = short.json()["entries"][0], general.json()["entries"][0]
    assert first["event_id"] == "e-1" and second["event_id"] == "e-2"
    assert second["seq"] > first["seq"]
    assert first["duplicate"] is second["duplicate"] is False
    assert again.json() == {
        "entries": [{"event_id": "e-1", "seq": None, "duplicate": True, "deliveries": 0}]
    }
    for name in ("content-type", "x-content-type-options", "content-security-policy"):
        assert short.headers[name] == general.headers[name], name
    assert short.headers["cache-control"] == "no-store"
    assert answered(200) - before == 3  # counted by route template, whichever way
    with app.state.platform.backbone.reading() as conn:
        stored = app.state.platform.backbone.log.read(conn, bus="default", after=0, limit=100)
    assert [e.event_id for e in stored if e.event_id.startswith("e-")] == ["e-1", "e-2"]


@pytest.mark.parametrize(
    ("grant", "body", "status", "error"),
    [
        (None, {"entries": [event("r-1")]}, 401, "Unauthenticated"),
        ({"roles": ["agent"]}, {"entries": [event("r-2")]}, 403, "Forbidden"),
        ({"roles": ["service"], "tenant": "XY"}, {"entries": [event("r-3")]}, 404, "NotFound"),
        ({}, {"entries": [event("r-4", specversion="0.3")]}, 400, "InvalidEvent"),
        ({}, {"entries": [event("r-5", source="aws.s3")]}, 400, "InvalidEvent"),
        ({}, {"entries": []}, 400, "InvalidEvent"),
    ],
)
def test_both_ways_refuse_alike(
    served: tuple[Any, str], grant: dict[str, Any] | None, body: Any, status: int, error: str
) -> None:
    app, base = served
    key = api_key(app, **grant) if grant is not None else None
    before = answered(status)
    short = put(base, body, SHORT, key)
    general = put(base, body, GENERAL, key)
    assert short.status_code == general.status_code == status, short.text
    assert short.json() == general.json()
    assert short.json()["error"] == error
    assert short.headers.get("www-authenticate") == general.headers.get("www-authenticate")
    assert answered(status) - before == 2


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error", "names"),
    [
        (b'{"entries": [', SHORT, 400, "MalformedJSON", "body"),
        ({"entries": [event("o-1")], "extra": 1}, SHORT, 422, "ValidationError", "extra"),
        ({"entries": {"0": event("o-2")}}, SHORT, 422, "ValidationError", "entries"),
        ([event("o-3")], SHORT, 422, "ValidationError", "body"),
        ({"entries": [event("o-4")]}, "text/plain", 422, "ValidationError", "body"),
    ],
)
def test_other_bodies_get_the_general_answers(
    served: tuple[Any, str],
    body: Any,
    content_type: str,
    status: int,
    error: str,
    names: str,
) -> None:
    app, base = served
    refused = put(base, body, content_type, api_key(app))
    assert refused.status_code == status, refused.text
    assert refused.json()["error"] == error
    assert names in refused.json()["message"]
