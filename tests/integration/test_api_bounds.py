"""Values past what the platform stores, and JSON bodies too deep, too large or unreadable, are
answered with a 4xx naming the bound, and nothing of them is stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.errors import InvalidRequest
from support.auth import as_operator

FLIGHTS = Path(__file__).parents[1] / "unit" / "flights" / "data"
PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
TOO_BIG = str(2**64)


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    settings = Settings(database_url=sqlite_url, run_workers=False)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        as_operator(c)
        yield c


def event(**overrides: object) -> dict[str, object]:
    return {"specversion": "1.0", "source": "s", "type": "t", "data": {}, **overrides}


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def post_json(client: TestClient, path: str, text: str) -> object:
    return client.post(path, content=text.encode(), headers={"Content-Type": "application/json"})


def stored_events(client: TestClient) -> list[object]:
    answer = client.get("/api/buses/default/events")
    assert answer.status_code == 200
    return list(answer.json())


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("GET", f"/api/buses/default/events?after={TOO_BIG}", "query.after"),
        ("GET", f"/api/dlq?after_id={TOO_BIG}", "query.after_id"),
        ("GET", f"/api/ingest/errors?after_id={TOO_BIG}", "query.after_id"),
        ("DELETE", f"/api/dlq/{TOO_BIG}", "path.letter_id"),
        ("GET", f"/api/buses/default/stream?after={TOO_BIG}", "query.after"),
        ("GET", "/api/buses/default/events?after=-1", "query.after"),
        ("DELETE", "/api/dlq/-1", "path.letter_id"),
    ],
)
def test_ids_and_positions_past_64_bits_are_422(
    client: TestClient, method: str, path: str, name: str
) -> None:
    answer = client.request(method, path)
    assert answer.status_code == 422, answer.text
    assert answer.json()["message"].startswith(name)


def test_the_largest_position_is_accepted(client: TestClient) -> None:
    answer = client.get(f"/api/buses/default/events?after={2**63 - 1}")
    assert answer.status_code == 200
    assert answer.json() == []


def test_redrive_ids_past_64_bits_are_422(client: TestClient) -> None:
    answer = post_json(client, "/api/dlq/redrive", f'{{"ids": [1, {TOO_BIG}]}}')
    assert answer.status_code == 422
    assert answer.json()["message"].startswith("body.ids[1]: Input should be less than or equal")


@pytest.mark.parametrize("limit", [TOO_BIG, "-1", "0", "1001"])
@pytest.mark.parametrize("path", ["/api/buses/default/events", "/api/dlq", "/api/ingest/errors"])
def test_huge_or_negative_limits_are_422(client: TestClient, path: str, limit: str) -> None:
    answer = client.get(path, params={"limit": limit})
    assert answer.status_code == 422
    assert answer.json()["message"].startswith("query.limit")


@pytest.mark.parametrize("day", ["10000-01-01", "9999-12-31", "0001-01-01", "1899-12-31"])
@pytest.mark.parametrize(
    "path",
    [
        "/api/flights/status?flight=LX318&date={}",
        "/api/fids/ZRH/departures?date={}",
        "/api/fids/ZRH/departures/stream?date={}",
        "/api/flights/search?origin=ZRH&destination=LHR&date={}",
        "/api/catalog/demo-schedule?start={}",
    ],
)
def test_dates_outside_1900_to_9998_are_422(client: TestClient, path: str, day: str) -> None:
    answer = client.get(path.format(day))
    assert answer.status_code == 422, answer.text
    assert "date" in answer.json()["message"] or "start" in answer.json()["message"]


def test_the_last_accepted_day_works_to_the_end(client: TestClient) -> None:
    answer = client.get("/api/catalog/demo-schedule?start=9998-12-29&days=3")
    assert answer.status_code == 200
    assert answer.json()[-1]["departure"].startswith("9998-12-31")


@pytest.mark.parametrize(
    "time", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59Z"]
)
def test_event_times_past_the_range_are_refused(client: TestClient, time: str) -> None:
    answer = client.post("/api/buses/default/events", json={"entries": [event(time=time)]})
    assert answer.status_code == 400
    assert answer.json()["message"].startswith("entries[0]: time: ")
    assert "is not between 1900-01-01 and 9998-12-31 UTC" in answer.json()["message"]
    assert stored_events(client) == []


def test_replay_times_past_the_range_are_refused(client: TestClient) -> None:
    client.post("/api/archives", json={"name": "a", "bus": "default"})
    answer = client.post(
        "/api/replays",
        json={
            "name": "r",
            "archive": "a",
            "destination_bus": "default",
            "start_time": "0001-01-01T00:00:00+14:00",
            "end_time": "2026-01-01T00:00:00Z",
        },
    )
    assert answer.status_code == 400
    assert answer.json()["message"].startswith("start_time: 0001-01-01T00:00:00+14:00 is not")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            ('TimeStamp="2026-11-24T06:41:12.345Z"', 'TimeStamp="0001-01-01T00:00:00+14:00"'),
            "@TimeStamp: time: 0001-01-01T00:00:00+14:00 is not between",
        ),
        (
            ("<OriginDate>2026-11-24</OriginDate>", "<OriginDate>9999-12-31</OriginDate>"),
            "origin_date: 9999-12-31 is not between 1900-01-01 and 9998-12-31",
        ),
        (
            ('SequenceNmbr="10442"', f'SequenceNmbr="{TOO_BIG}0000"'),
            "SequenceNmbr: at most 18 digits",
        ),
    ],
)
def test_aidx_values_past_the_range_are_refused_and_logged(
    client: TestClient, change: tuple[str, str], fragment: str
) -> None:
    document = (FLIGHTS / "aidx_departure.xml").read_text()
    assert change[0] in document
    answer = client.post("/api/ingest/aidx", content=document.replace(*change).encode())
    assert answer.status_code == 400, answer.text
    assert fragment in answer.json()["message"]
    (logged,) = client.get("/api/ingest/errors").json()
    assert fragment in logged["message"]


def test_json_nested_past_the_depth_limit_is_400_and_not_stored(client: TestClient) -> None:
    deep = client.post("/api/buses/default/events", json={"entries": [event(data=nested(63))]})
    assert deep.status_code == 400
    body = deep.json()
    assert body["error"] == "JSONTooDeep"
    assert body["message"].startswith("body.entries[0].data.a.a.a")
    assert "nested deeper than 64 levels" in body["message"]
    within = client.post("/api/buses/default/events", json={"entries": [event(data=nested(60))]})
    assert within.status_code == 200, within.text
    assert len(stored_events(client)) == 1


def test_json_too_deep_for_the_parser_is_400(client: TestClient) -> None:
    answer = post_json(client, "/api/test-event-pattern", "[" * 100_000 + "]" * 100_000)
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "JSONTooDeep",
        "message": "body: arrays and objects nested deeper than 64 levels",
    }


def test_json_with_too_many_values_is_413(client: TestClient) -> None:
    many = {"entries": [event(data={"values": list(range(100_001))})]}
    answer = client.post("/api/buses/default/events", json=many)
    assert answer.status_code == 413
    assert answer.json() == {
        "error": "JSONTooLarge",
        "message": "body: more than 100000 values in one JSON document",
    }
    assert stored_events(client) == []


@pytest.mark.parametrize(
    ("path", "text", "where"),
    [
        (
            "/api/buses/default/events",
            '{"entries": [{"specversion": "1.0", "source": "s", "type": "t", "data": {"x": "\\ud800"}}]}',
            "body.entries[0].data.x",
        ),
        (
            "/api/buses/default/events",
            '{"entries": [{"specversion": "1.0", "source": "s", "type": "t", "data": {"\\udfff": 1}}]}',
            "body.entries[0].data",
        ),
        (
            "/api/workflows/executions",
            json.dumps({"name": "w", "definition": PASS, "input": {"a": "x\\ud800y"}}).replace(
                "\\\\", "\\"
            ),
            "body.input.a",
        ),
        ("/api/buses", '{"name": "b\\udbff"}', "body.name"),
    ],
)
def test_lone_surrogates_are_refused_before_they_are_stored(
    client: TestClient, path: str, text: str, where: str
) -> None:
    buses = client.get("/api/buses").json()
    answer = post_json(client, path, text)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "InvalidJSON"
    assert answer.json()["message"].startswith(f"{where}: text holds a lone surrogate")
    assert stored_events(client) == []
    assert client.get("/api/buses").json() == buses
    assert client.get("/api/workflows/executions").json() == []


def test_a_surrogate_pair_is_a_character_and_is_kept(client: TestClient) -> None:
    text = '{"entries": [{"specversion": "1.0", "source": "s", "type": "t", "data": {"x": "\\ud83d\\ude80"}}]}'
    assert post_json(client, "/api/buses/default/events", text).status_code == 200
    (stored,) = stored_events(client)
    assert stored["event"]["data"] == {"x": "\N{ROCKET}"}  # type: ignore[index]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_refused(client: TestClient, number: str) -> None:
    text = f'{{"entries": [{{"specversion": "1.0", "source": "s", "type": "t", "data": {{"x": {number}}}}}]}}'
    answer = post_json(client, "/api/buses/default/events", text)
    assert answer.status_code == 400
    assert "is not a JSON number" in answer.json()["message"]
    assert stored_events(client) == []


def test_eventbridge_detail_is_checked_as_the_document_it_holds(client: TestClient) -> None:
    entry = {"Source": "s", "DetailType": "t", "Detail": json.dumps(nested(70))}
    deep = client.post("/api/buses/default/events", json={"entries": [entry]})
    assert deep.status_code == 400
    assert deep.json()["message"].startswith("entries[0]: data.a.a.a")
    surrogate = {"Source": "s", "DetailType": "t", "Detail": '{"x": "\\ud800"}'}
    lone = client.post("/api/buses/default/events", json={"entries": [surrogate]})
    assert lone.status_code == 400
    assert "lone surrogate" in lone.json()["message"]
    assert stored_events(client) == []


def test_bodies_that_are_not_json_pass_to_their_route(client: TestClient) -> None:
    malformed = post_json(client, "/api/buses/default/events", "{not json")
    assert malformed.status_code == 400
    assert malformed.json()["error"] == "MalformedJSON"
    telex = client.post(
        "/api/ingest/mvt",
        content=b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        headers={"Content-Type": "text/plain"},
    )
    assert telex.status_code == 400
    assert "expected the MVT, MVA or DIV message identifier" in telex.json()["message"]


def test_a_content_length_of_many_digits_is_413(client: TestClient) -> None:
    answer = client.post(
        "/api/buses/default/events",
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Length": "9" * 40},
    )
    assert answer.status_code == 413


def test_limits_follow_the_settings(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        run_workers=False,
        json_max_depth=4,
        json_max_elements=50,
        max_request_bytes=2048,
    )
    with TestClient(create_app(settings)) as client:
        as_operator(client)
        deep = client.post("/api/buses/default/events", json={"entries": [event(data={"a": {}})]})
        assert deep.status_code == 400
        assert "deeper than 4 levels" in deep.json()["message"]
        many = client.post("/api/test-event-pattern", json={"event_pattern": {}, "event": [0] * 60})
        assert many.status_code == 413
        assert "more than 50 values" in many.json()["message"]
        big = client.post("/api/buses", json={"name": "b", "description": "x" * 3000})
        assert big.status_code == 413
        assert "2048 bytes" in big.json()["message"]


def test_the_workflow_engine_checks_what_it_stores_from_any_caller(client: TestClient) -> None:
    engine = client.app.state.platform.workflows  # type: ignore[attr-defined]
    with pytest.raises(InvalidRequest, match=r"input\.a\.a\.a.*deeper than 64"):
        engine.start(name="deep", definition=PASS, input=nested(70))
    with pytest.raises(InvalidRequest, match="input: text holds a lone surrogate"):
        engine.start(name="lone", definition=PASS, input="\ud800")
    with pytest.raises(InvalidRequest, match="definition: arrays and objects nested deeper"):
        engine.start(name="text", definition="[" * 5000 + "]" * 5000, input={})
    assert engine.list() == []


def test_workflow_inputs_and_task_outputs_are_at_most_256_kb(client: TestClient) -> None:
    big = {"name": "big", "definition": PASS, "input": {"blob": "x" * (256 * 1024)}}
    answer = client.post("/api/workflows/executions", json=big)
    assert answer.status_code == 400
    assert answer.json()["message"] == (
        "input: 262156 bytes of JSON, more than the 262144-byte limit"
    )
    engine = client.app.state.platform.workflows  # type: ignore[attr-defined]
    with pytest.raises(InvalidRequest, match="output: 262156 bytes of JSON"):
        engine.send_task_success(token="t", output={"blob": "x" * (256 * 1024)})
    assert client.get("/api/workflows/executions").json() == []


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ('{"a":' * 5000 + "1" + "}" * 5000, "nested deeper than 64 levels"),
        ('{"a": ["\\ud800"]}', "at a[0]: text holds a lone surrogate"),
        ('{"a": [' + "9" * 5000 + "]}", "not readable JSON"),
    ],
)
def test_patterns_given_as_json_text_are_held_to_the_same_limits(
    client: TestClient, pattern: str, fragment: str
) -> None:
    rule = client.put("/api/buses/default/rules/r", json={"name": "r", "event_pattern": pattern})
    assert rule.status_code == 400
    assert fragment in rule.json()["message"]
    test = client.post("/api/test-event-pattern", json={"event_pattern": pattern, "event": {}})
    assert test.status_code == 400
    assert fragment in test.json()["message"]
    rules = client.get("/api/buses/default/rules")
    assert rules.status_code == 200
    assert "r" not in [rule["name"] for rule in rules.json()]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "event: must be a JSON object, not list"),
        ('{"a":' * 5000 + "1" + "}" * 5000, "event: arrays and objects nested deeper than 64"),
        ('{"a": "\\udc00"}', "event.a: text holds a lone surrogate"),
    ],
)
def test_test_event_pattern_refuses_events_that_are_not_json_objects(
    client: TestClient, event: object, message: str
) -> None:
    answer = client.post(
        "/api/test-event-pattern", json={"event_pattern": {"a": [1]}, "event": event}
    )
    assert answer.status_code == 400
    assert answer.json()["message"].startswith(message)


def test_the_openapi_document_describes_errors_as_they_are_given(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["HTTPValidationError"]["required"] == ["error", "message"]
    assert "ValidationError" not in schemas
    invalid = client.get("/api/dlq?limit=0").json()
    assert set(invalid) == {"error", "message", "details"}
