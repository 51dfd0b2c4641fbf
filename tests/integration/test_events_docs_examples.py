"""Every example docs/events.md marks as checked (`<!-- checked: KIND accepted|refused -->`),
the API's OpenAPI examples and the CLI's help say what the validation code does: accepted
examples are accepted by the real API and CLI, refused ones are refused with the documented
message. So the documentation cannot drift from the validators."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from jetbridge import cli
from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.events.schedule import parse_schedule
from support.auth import as_operator

DOC = Path(__file__).parents[2] / "docs" / "events.md"
MARKER = re.compile(r"^<!-- checked: ([a-z-]+) (accepted|refused) -->$")
ROW = re.compile(r"^\| `(.+)` \| `(.+)` \|$")
KINDS = {"put-events", "retry-policy", "schedule"}
TARGET = {"id": "partner", "kind": "http", "url": "https://partner.example/hook"}


def checked_examples() -> dict[tuple[str, str], list[Any]]:
    """(kind, accepted|refused) -> the examples: a code block's JSON list (or its lines, for
    text) when accepted; a table's (input, message) rows when refused."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    found: dict[tuple[str, str], list[Any]] = {}
    for number, line in enumerate(lines):
        marked = MARKER.match(line)
        if not marked:
            continue
        kind, verdict = marked.groups()
        following = iter(lines[number + 1 :])
        opening = next(following)
        if opening.startswith("```"):
            block = list(iter(following.__next__, "```"))
            examples: list[Any] = json.loads("\n".join(block)) if opening == "```json" else block
        else:
            assert opening.startswith("| "), f"line {number + 2}: expected a table or code block"
            rows = [opening, *iter(following.__next__, "")]
            examples = [match.groups() for row in rows[2:] if (match := ROW.match(row))]
            assert len(examples) == len(rows) - 2, f"line {number + 2}: a row is not `in` | `out`"
        assert examples, f"line {number + 1}: no examples after the marker"
        found[(kind, verdict)] = examples
    return found


EXAMPLES = checked_examples()


def examples(kind: str, verdict: str) -> list[Any]:
    return EXAMPLES[(kind, verdict)]


def test_each_kind_has_accepted_and_refused_examples() -> None:
    assert set(EXAMPLES) == {(kind, v) for kind in KINDS for v in ("accepted", "refused")}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'docs.db'}", run_workers=False))
    with TestClient(app) as test_client:
        yield as_operator(test_client)


def put_rule(client: TestClient, **rule: Any) -> Any:
    return client.put("/api/buses/default/rules/example", json={"name": "example", **rule})


def message(answer: Any) -> str:
    return str(answer.json()["message"])


def test_documented_events_are_published_and_refusals_say_what_the_docs_say(
    client: TestClient,
) -> None:
    batch = examples("put-events", "accepted")
    published = client.post("/api/buses/default/events", json={"entries": batch})
    assert published.status_code == 200, published.text
    assert len(published.json()["entries"]) == len(batch)
    for entry, said in examples("put-events", "refused"):
        refused = client.post("/api/buses/default/events", json={"entries": [json.loads(entry)]})
        assert refused.status_code == 400, (entry, refused.text)
        assert said in message(refused), entry


def test_documented_events_are_published_and_refused_by_the_cli_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JETBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("JETBRIDGE_DATA_DIR", str(tmp_path))
    batch = examples("put-events", "accepted")
    assert cli.main(["events", "put", json.dumps(batch)]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(batch)
    for entry, said in examples("put-events", "refused"):
        assert cli.main(["events", "put", entry]) == 2, entry
        # The CLI publishes one entry as a batch of one: the same message, the same index.
        assert said in capsys.readouterr().err, entry


def test_documented_retry_policies_are_accepted_or_refused_in_words(client: TestClient) -> None:
    for policy in examples("retry-policy", "accepted"):
        answer = put_rule(
            client,
            event_pattern={"source": ["airport.gates"]},
            targets=[{**TARGET, "retry_policy": policy}],
        )
        assert answer.status_code == 200, (policy, answer.text)
        shown = answer.json()["targets"][0]["retry_policy"]
        attempts = policy.get("maximum_retry_attempts", policy.get("MaximumRetryAttempts", 185))
        assert shown["maximum_retry_attempts"] == attempts
    for policy, said in examples("retry-policy", "refused"):
        answer = put_rule(
            client,
            event_pattern={"source": ["airport.gates"]},
            targets=[{**TARGET, "retry_policy": json.loads(policy)}],
        )
        assert answer.status_code == 422, (policy, answer.text)
        assert f"targets[0].retry_policy.{said}" in message(answer), policy


def test_documented_schedules_are_accepted_or_refused_in_words(client: TestClient) -> None:
    for expression in examples("schedule", "accepted"):
        answer = put_rule(client, schedule_expression=expression, targets=[TARGET])
        assert answer.status_code == 200, (expression, answer.text)
        assert answer.json()["schedule_expression"] == expression
    for expression, said in examples("schedule", "refused"):
        answer = put_rule(client, schedule_expression=expression, targets=[TARGET])
        assert answer.status_code == 400, (expression, answer.text)
        assert message(answer) == said


def test_the_openapi_examples_are_accepted(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    (batch,) = schemas["PutEventsRequest"]["properties"]["entries"]["examples"]
    assert client.post("/api/buses/default/events", json={"entries": batch}).status_code == 200
    policy = schemas["RetryPolicy"]["properties"]
    for name, field in policy.items():
        assert (field["minimum"], field["maximum"]) in {(0, 185), (60, 86400)}, name
        for example in field["examples"]:
            target = {**TARGET, "retry_policy": {name: example}}
            answer = put_rule(client, event_pattern={"source": ["x"]}, targets=[target])
            assert answer.status_code == 200, answer.text
    rule = schemas["RuleSpec"]["properties"]
    for expression in rule["schedule_expression"]["examples"]:
        answer = put_rule(client, schedule_expression=expression, targets=[TARGET])
        assert answer.status_code == 200, answer.text
    for pattern in rule["event_pattern"]["examples"]:
        assert put_rule(client, event_pattern=pattern, targets=[TARGET]).status_code == 200


def test_the_cli_help_states_the_bounds_the_validator_enforces(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["rules", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "maximum_retry_attempts 0-185" in shown
    assert "maximum_event_age_seconds 60-86400" in shown
    shown_examples = [
        expression
        for expression in re.findall(r"(?:rate|cron)\([^)]*\)", shown)
        if "Minutes Hours" not in expression  # the form's description, not an example
    ]
    assert len(shown_examples) >= 4
    for expression in shown_examples:
        parse_schedule(expression)  # raises if the help shows what a rule may not hold
