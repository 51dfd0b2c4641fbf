"""Hostile and malformed requests get a precise 4xx, never a 500, and nothing is half-written."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.config import Settings
from support.auth import as_operator


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    with TestClient(
        create_app(Settings(database_url=sqlite_url)), raise_server_exceptions=False
    ) as c:
        as_operator(c)
        yield c


def event(**overrides: object) -> dict[str, object]:
    return {"specversion": "1.0", "source": "s", "type": "t", "data": {}, **overrides}


def events_in_log(client: TestClient) -> int:
    return len(client.get("/api/buses/default/events").json())


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "JSON"),
        (b"[]", 422, "body"),
        (b'{"entries": "x"}', 422, "entries"),
        (b'{"entries": [], "extra": 1}', 422, "extra"),
        (b'{"entries": []}', 400, "at least one"),
        (b'{"entries": [1]}', 400, "entries[0]"),
        (b'{"entries": [{"specversion": "0.3", "source": "s", "type": "t"}]}', 400, "specversion"),
        (b'{"entries": [{"specversion": "1.0", "type": "t"}]}', 400, "entries[0]: source"),
        (b'{"entries": [{"specversion": "1.0", "source": "s", "type": 5}]}', 400, "type"),
        (
            b'{"entries": [{"specversion": "1.0", "source": "s", "type": "t", "data": [1]}]}',
            400,
            "data",
        ),
        (
            b'{"entries": [{"specversion": "1.0", "source": "s", "type": "t", "time": "yesterday"}]}',
            400,
            "time",
        ),
        (
            b'{"entries": [{"specversion": "1.0", "source": "s", "type": "t", "traceparent": "x"}]}',
            400,
            "traceparent",
        ),
        (
            b'{"entries": [{"specversion": "1.0", "source": "s", "type": "t", "Bad-Name": 1}]}',
            400,
            "Bad-Name",
        ),
        (b'{"entries": [{"Source": "s", "DetailType": "t", "Detail": "{oops"}]}', 400, "Detail"),
        (b'{"entries": [{"Source": "s", "DetailType": "t", "Detail": {}}]}', 400, "Detail"),
    ],
)
def test_bad_put_events_requests(
    client: TestClient, body: bytes, status: int, fragment: str
) -> None:
    response = client.post(
        "/api/buses/default/events", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert fragment in response.json()["message"]
    assert events_in_log(client) == 0


def test_one_bad_entry_rejects_the_whole_batch(client: TestClient) -> None:
    response = client.post(
        "/api/buses/default/events", json={"entries": [event(), event(), {"type": "t"}]}
    )
    assert response.status_code == 400
    assert "entries[2]" in response.json()["message"]
    assert events_in_log(client) == 0


def test_oversize_event_is_rejected_with_its_size(client: TestClient) -> None:
    big = event(data={"blob": "x" * (256 * 1024)})
    response = client.post("/api/buses/default/events", json={"entries": [big]})
    assert response.status_code == 400
    assert "262144-byte limit" in response.json()["message"]


def test_oversize_request_body_is_413(client: TestClient) -> None:
    response = client.post(
        "/api/buses/default/events",
        content=b"{" + b" " * (5 * 1024 * 1024) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_unknown_bus_is_404(client: TestClient) -> None:
    response = client.post("/api/buses/nope/events", json={"entries": [event()]})
    assert response.status_code == 404
    assert "nope" in response.json()["message"]


def test_eventbridge_entries_are_accepted(client: TestClient) -> None:
    entry = {
        "Source": "s",
        "DetailType": "flight.delayed",
        "Detail": '{"minutes": 20}',
        "Resources": ["r"],
    }
    response = client.post("/api/buses/default/events", json={"entries": [entry]})
    assert response.status_code == 200, response.text
    (stored,) = client.get("/api/buses/default/events").json()
    assert stored["event"]["type"] == "flight.delayed"
    assert stored["event"]["data"] == {"minutes": 20}


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ({"name": "r", "event_pattern": {"detail": {"gate": "A1"}}}, "detail.gate"),
        ({"name": "r", "event_pattern": {"source": [{"prefix": 5}]}}, "source"),
        (
            {"name": "r", "event_pattern": {"a": [1]}, "schedule_expression": "rate(1 minute)"},
            "exactly one",
        ),
        ({"name": "r", "schedule_expression": "rate(0 minutes)"}, "schedule_expression"),
        ({"name": "r", "schedule_expression": "cron(0 10 * * * *)"}, "schedule_expression"),
        (
            {"name": "r", "event_pattern": {"a": [1]}, "targets": [{"id": "x", "kind": "python"}]},
            "handler",
        ),
        (
            {"name": "r", "event_pattern": {"a": [1]}, "targets": [{"id": "x", "kind": "ftp"}]},
            "kind",
        ),
        (
            {
                "name": "r",
                "event_pattern": {"a": [1]},
                "targets": [{"id": "x", "kind": "http", "url": "file:///etc/passwd"}],
            },
            "url",
        ),
        (
            {
                "name": "r",
                "event_pattern": {"a": [1]},
                "targets": [{"id": "x", "kind": "bus", "bus": "ghost"}],
            },
            "ghost",
        ),
        (
            {
                "name": "r",
                "event_pattern": {"a": [1]},
                "targets": [
                    {"id": "x", "kind": "python", "handler": "m:f", "input_path": "detail"}
                ],
            },
            "targets[0]",
        ),
        (
            {
                "name": "r",
                "event_pattern": {"a": [1]},
                "targets": [
                    {
                        "id": "x",
                        "kind": "python",
                        "handler": "m:f",
                        "retry_policy": {"maximum_retry_attempts": 186},
                    }
                ],
            },
            "maximum_retry_attempts",
        ),
        ({"name": "r", "event_pattern": {"a": [1]}, "surprise": True}, "surprise"),
        ({"name": "r/../x", "event_pattern": {"a": [1]}}, "name"),
    ],
)
def test_invalid_rules_are_rejected_and_not_written(
    client: TestClient, rule: dict[str, object], fragment: str
) -> None:
    name = "r"
    response = client.put(f"/api/buses/default/rules/{name}", json=rule)
    assert 400 <= response.status_code < 500, response.text
    assert fragment in response.text
    assert "r" not in [rule["name"] for rule in client.get("/api/buses/default/rules").json()]


def test_rule_name_must_match_the_path(client: TestClient) -> None:
    response = client.put(
        "/api/buses/default/rules/a", json={"name": "b", "event_pattern": {"x": [1]}}
    )
    assert response.status_code == 400


def test_test_event_pattern_endpoint(client: TestClient) -> None:
    ok = client.post(
        "/api/test-event-pattern",
        json={"event_pattern": {"source": ["s"]}, "event": {"source": "s"}},
    )
    assert ok.json() == {"result": True}
    bad = client.post(
        "/api/test-event-pattern", json={"event_pattern": {"source": "s"}, "event": {}}
    )
    assert bad.status_code == 400
    assert "source" in bad.json()["message"]


def test_dlq_redrive_of_unknown_ids_is_404(client: TestClient) -> None:
    response = client.post("/api/dlq/redrive", json={"ids": [999]})
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("replay", "fragment"),
    [
        (
            {
                "name": "x",
                "archive": "nope",
                "destination_bus": "default",
                "start_time": "2026-01-01T00:00:00Z",
                "end_time": "2026-01-02T00:00:00Z",
            },
            "nope",
        ),
        (
            {
                "name": "x",
                "archive": "a",
                "destination_bus": "default",
                "start_time": "2026-01-02T00:00:00Z",
                "end_time": "2026-01-01T00:00:00Z",
            },
            "end_time",
        ),
        (
            {
                "name": "x",
                "archive": "a",
                "destination_bus": "default",
                "start_time": "soon",
                "end_time": "2026-01-01T00:00:00Z",
            },
            "start_time",
        ),
    ],
)
def test_invalid_replays(client: TestClient, replay: dict[str, str], fragment: str) -> None:
    client.post("/api/archives", json={"name": "a", "bus": "default"})
    response = client.post("/api/replays", json=replay)
    assert 400 <= response.status_code < 500
    assert fragment in response.json()["message"]


def test_openapi_is_published(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/api/buses/{bus}/events" in spec["paths"]
