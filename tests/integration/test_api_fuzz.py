"""The whole HTTP API fuzzed from its OpenAPI document: whatever a caller sends, valid or not, the
answer is never a 5xx, and a response that a route documents conforms to its schema.

Schemathesis generates requests from the document (its boundary cases, such as integers just past
2^63 and dates past 9999, and random valid and invalid data) with a fixed seed, against a real
platform on a loopback port, as each role in turn (anonymous, a passenger, an airline's agent,
operations, service and admin, and the platform's operator): every request carries that caller's
credentials. The operator reaches every route's depths with the most examples; the other roles
mostly meet their policy's refusals, with fewer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema

from jetbridge.app import create_app
from jetbridge.config import Settings
from support.auth import bearer
from support.servers import serve_app

# Enough for every boundary case and a spread of random ones within about two minutes on a loaded
# two-core machine, for the ~50 operations.
EXAMPLES_PER_OPERATION = 25
EXAMPLES_PER_OTHER_ROLE = 6
ROLES = ("operator", "anonymous", "passenger", "agent", "operations", "service", "admin")
SEED = 20260301
CHECKS = ("not_a_server_error", "response_schema_conformance")
# Live streams never end; their parameters are checked in test_api_bounds.py.
STREAMS = r"/stream$"
PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
FLIGHTS = Path(__file__).parents[1] / "unit" / "flights" / "data"


# Half of the time a path names something that exists, so requests reach past the lookup.
EXISTING = {
    "bus": ["default"],
    "rule": ["fuzzed"],
    "name": ["fuzzed"],
    "flight_key": ["LX0318-2026-11-24-ZRH-LHR"],
    "airport": ["ZRH"],
}


# Now and then a number or a date just past what the platform stores, whatever the document says.
HOSTILE = {
    "numbers": ["18446744073709551616", "9223372036854775808", "9223372036854775807", "-1"],
    "dates": ["10000-01-01", "9999-12-31", "0001-01-01", "1899-12-31"],
}
HOSTILE_PARAMETERS = {
    "path.letter_id": "numbers",
    "query.after": "numbers",
    "query.after_id": "numbers",
    "query.limit": "numbers",
    "query.days": "numbers",
    "query.date": "dates",
    "query.start": "dates",
}


def fuzz_config(auth_headers: dict[str, str], examples: int) -> dict[str, Any]:
    existing = {f"path.{name}": {"dictionary": name, "probability": 0.5} for name in EXISTING}
    hostile = {
        parameter: {"dictionary": name, "probability": 0.3}
        for parameter, name in HOSTILE_PARAMETERS.items()
    }
    return {
        "seed": SEED,
        "headers": auth_headers,
        "dictionaries": {
            name: {"values": values} for name, values in {**EXISTING, **HOSTILE}.items()
        },
        "parameters": {**existing, **hostile},
        "generation": {
            "max-examples": examples,
            "deterministic": True,
            "mode": "all",
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "workers": 1,
        "request-timeout": 20,
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Any]]]:
    directory: Path = tmp_path_factory.mktemp("fuzz")
    settings = Settings(
        database_url=f"sqlite:///{directory / 'jetbridge.db'}",
        data_dir=directory,
        run_workers=False,
    )
    app = create_app(settings)
    with serve_app(app) as url:
        credentials = {
            "operator": bearer(app),
            "anonymous": {},
            "passenger": passenger(url),
            **{
                role: bearer(app, roles=(role,), tenant="LX")
                for role in ("agent", "operations", "service", "admin")
            },
        }
        seed_platform(url, credentials["operator"])
        yield url, credentials


@pytest.fixture(scope="module")
def platform_url(served: tuple[str, dict[str, Any]]) -> str:
    return served[0]


def passenger(url: str) -> dict[str, str]:
    account = {"username": "fuzzed-passenger", "password": "a long passphrase"}
    httpx.post(f"{url}/api/auth/register", json=account).raise_for_status()
    grant = {"grant_type": "password", **account}
    token = httpx.post(f"{url}/api/auth/token", data=grant).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def seed_platform(url: str, headers: dict[str, str]) -> None:
    """A rule, an archive, an execution and a flight, all named as EXISTING names them."""
    with httpx.Client(base_url=url, headers=headers) as client:
        answers = [
            client.put(
                "/api/buses/default/rules/fuzzed",
                json={"name": "fuzzed", "event_pattern": {"source": ["fuzz"]}},
            ),
            client.post("/api/archives", json={"name": "fuzzed", "bus": "default"}),
            client.post(
                "/api/workflows/executions",
                json={"name": "fuzzed", "definition": PASS, "input": {"a": 1}},
            ),
            client.post("/api/ingest/aidx", content=(FLIGHTS / "aidx_departure.xml").read_bytes()),
        ]
    assert all(answer.is_success for answer in answers), [a.text for a in answers]


@pytest.fixture(params=ROLES)
def role(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def auth_headers(served: tuple[str, dict[str, Any]], role: str) -> dict[str, str]:
    """The credentials every fuzzed request of this role carries."""
    return dict(served[1][role])


def fuzz(url: str, auth_headers: dict[str, str], examples: int) -> tuple[int, list[str]]:
    """Run schemathesis over the whole document; how many cases it sent, and every problem."""
    config = SchemathesisConfig.from_dict(fuzz_config(auth_headers, examples))
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config)
    schema = schema.exclude(path_regex=STREAMS)
    cases, problems = 0, []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            cases += len(event.recorder.cases)
            problems += failures_of(event.recorder)
        elif isinstance(event, events.NonFatalError | events.FatalError):
            problems.append(f"schemathesis could not run: {event}")
    return cases, problems


def failures_of(recorder: Any) -> list[str]:
    found = []
    for checks in recorder.checks.values():
        for check in checks:
            if check.status == Status.FAILURE and check.failure_info is not None:
                failure = check.failure_info.failure
                found.append(
                    f"{recorder.label}: {failure.title}: {failure.message}\n"
                    f"    {check.failure_info.code_sample}"
                )
    return found


def test_no_request_gets_a_server_error_or_a_nonconforming_answer(
    platform_url: str, auth_headers: dict[str, str], role: str
) -> None:
    examples = EXAMPLES_PER_OPERATION if role == "operator" else EXAMPLES_PER_OTHER_ROLE
    cases, problems = fuzz(platform_url, auth_headers, examples)
    print(f"fuzz as {role}: {cases} requests")
    assert cases > 40 * examples  # every operation was reached, most of them many times
    assert not problems, "\n".join(sorted(set(problems)))


# Values just past what the platform stores, for every integer and date parameter the API has.
PAST_THE_RANGE = {
    "integer": [2**64, 2**63, -(2**63) - 1, -1, 10**30],
    "date": ["10000-01-01", "9999-12-31", "0001-01-01", "1899-12-31"],
    "date-time": [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "10000-01-01T00:00:00Z",
    ],
}
GOOD = {"flight": "LX318", "origin": "ZRH", "destination": "LHR", "date": "2026-11-24"}


def parameters(operation: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in operation.get("parameters", []) if p["in"] in {"path", "query"}]


def kind_of(parameter: dict[str, Any]) -> str | None:
    schema = parameter.get("schema", {})
    options = schema.get("anyOf", [schema])
    for option in options:
        if option.get("type") == "integer":
            return "integer"
        if option.get("format") in {"date", "date-time"}:
            return str(option["format"])
    return None


def good_value(parameter: dict[str, Any]) -> str:
    name = parameter["name"]
    if name in GOOD:
        return GOOD[name]
    if name in EXISTING:
        return EXISTING[name][0]
    return {"integer": "1", "date": "2026-11-24"}.get(kind_of(parameter) or "", "x")


def requests_past_the_range(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(method, path, query) for each integer or date parameter set to each value past its range."""
    for template, methods in spec["paths"].items():
        if re.search(STREAMS, template) is None:
            for method, operation in methods.items():
                for target in parameters(operation):
                    kind = kind_of(target)
                    for value in PAST_THE_RANGE.get(kind or "", []):
                        path, query = template, {}
                        for parameter in parameters(operation):
                            chosen = str(value) if parameter is target else good_value(parameter)
                            if parameter["in"] == "path":
                                path = path.replace("{" + parameter["name"] + "}", chosen)
                            elif parameter is target or parameter.get("required"):
                                query[parameter["name"]] = chosen
                        yield method.upper(), path, query


def test_every_integer_and_date_parameter_refuses_values_past_its_range(
    platform_url: str, auth_headers: dict[str, str]
) -> None:
    with httpx.Client(base_url=platform_url, headers=auth_headers, timeout=30) as client:
        spec = client.get("/openapi.json").json()
        sent = list(requests_past_the_range(spec))
        answers = [(m, p, q, client.request(m, p, params=q)) for m, p, q in sent]
    assert len(sent) > 50
    accepted = [
        f"{method} {path} {query}: {answer.status_code} {answer.text[:200]}"
        for method, path, query, answer in answers
        if not 400 <= answer.status_code < 500
    ]
    assert not accepted, "\n".join(accepted)
