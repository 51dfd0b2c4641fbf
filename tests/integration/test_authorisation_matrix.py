"""Every route of the running app, from its routing table, by every role, own and other tenant,
and anonymous: the policy each route declares is the one enforced. A route without a policy fails."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Mount

from jetbridge.api.policy import Policy, policy_table
from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.events import registry
from support.auth import bearer, ensure_tenant
from support.servers import serve_app

# Mounted sub-applications are not FastAPI routes; each is listed here with its policy.
MOUNTS = {"/test-payments": "public: the built-in test card network, mounted only when no "
          "payment provider is configured"}  # fmt: skip

PRINCIPALS: dict[str, dict[str, Any] | None] = {
    "anonymous": None,
    "passenger": {"user": True},
    "agent": {"roles": ("agent",), "tenant": "LX"},
    "operations": {"roles": ("operations",), "tenant": "LX"},
    "service": {"roles": ("service",), "tenant": "LX"},
    "admin": {"roles": ("admin",), "tenant": "LX"},
    "operator": {"roles": ("admin",), "tenant": None},
}
SAMPLES = {
    "bus": "tenant-lx",
    "rule": "r1",
    "target_id": "t1",
    "name": "x1",
    "letter_id": "1",
    "booking_id": "00000000-0000-0000-0000-000000000000",
    "map_run": "00000000-0000-0000-0000-000000000000",
    "customer_id": "c1",
    "flight_key": "LX0100-2026-12-01-ZRH-LHR",
    "flight_id": "LX0100-2026-12-01",
    "airport": "ZRH",
    "direction": "departures",
    "kind": "mvt",
    "key_id": "0000000000000000",
    "subscription_id": "s1",
    "username": "nobody-here",
}
BODIES: dict[str, Any] = {
    "/api/buses/{bus}/rules/{rule}": {"name": "r1", "event_pattern": {"source": ["x"]}},
    "/api/buses/{bus}/rules/{rule}/targets": [],
    "/api/buses/{bus}/events": {"entries": [{"specversion": "1.0", "source": "x", "type": "y"}]},
    "/api/console/buses/{bus}/pattern-trial": {"event_pattern": {"source": ["x"]}},
    "/api/console/buses/{bus}/rules/{rule}/pattern": {"event_pattern": {"source": ["x"]}},
}
ACTIONS = {
    "/api/buses/{bus}/rules/{rule}/{action}": "enable",
    "/api/users/{username}/{action}": "enable",
}


def allowed(policy: Policy, who: str) -> bool:
    grant = PRINCIPALS[who]
    if policy.roles is None:
        return True
    if grant is None:
        return False
    roles = {"passenger"} if grant.get("user") else set(grant["roles"])
    if policy.operator_only:
        return "admin" in roles and grant.get("tenant") is None
    if policy.platform_only:
        return bool(roles & policy.roles) and grant.get("tenant") is None
    return bool(roles & policy.roles)


def denied_by_policy(response: httpx.Response) -> bool:
    if response.status_code not in {401, 403}:
        return False
    message = response.json().get("message", "")
    return response.status_code == 401 or "needs the" in message


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, dict[str, Any]]]:
    database = tmp_path_factory.mktemp("matrix") / "jetbridge.db"
    app = create_app(Settings(database_url=f"sqlite:///{database}", run_workers=False))
    with serve_app(app) as base:
        ensure_tenant(app, "LX")
        ensure_tenant(app, "ZRH", kind="airport")
        headers: dict[str, Any] = {}
        for who, grant in PRINCIPALS.items():
            if grant is None:
                headers[who] = {}
            elif grant.get("user"):
                headers[who] = _passenger(base)
            else:
                headers[who] = bearer(app, roles=grant["roles"], tenant=grant["tenant"])
        yield app, base, headers


def _passenger(base: str) -> dict[str, str]:
    httpx.post(
        f"{base}/api/auth/register",
        json={"username": "pax-matrix", "password": "a long passphrase"},
    ).raise_for_status()
    token = httpx.post(
        f"{base}/api/auth/token",
        data={"grant_type": "password", "username": "pax-matrix", "password": "a long passphrase"},
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def routes(app: Any) -> list[tuple[str, str, Policy]]:
    for route in app.routes:
        if isinstance(route, Mount):
            assert route.path in MOUNTS, f"mounted {route.path} has no declared policy"
    found = []
    for method, path, policy in policy_table(app):
        assert policy is not None, f"{method} {path} declares no policy"
        found.append((method, path, policy))
    return found


def call(
    base: str, method: str, template: str, headers: dict[str, str], bus: str
) -> httpx.Response:
    samples = {**SAMPLES, "bus": bus, "action": ACTIONS.get(template, "x")}
    path = re.sub(r"\{(\w+)\}", lambda m: samples[m.group(1)], template)
    body = BODIES.get(template, {}) if method in {"POST", "PUT", "PATCH"} else None
    with (
        httpx.Client(base_url=base, timeout=10) as client,
        client.stream(method, path, headers=headers, json=body) as response,
    ):
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            response.close()
            response._content = b"{}"
        else:
            response.read()
        return response


def test_every_route_declares_its_policy_and_the_policy_holds(
    served: tuple[Any, str, dict[str, Any]],
) -> None:
    app, base, headers = served
    table = [(m, p, pol) for m, p, pol in routes(app) if m != "WEBSOCKET"]
    assert len(table) > 50
    wrong = []
    for method, path, policy in table:
        for who in PRINCIPALS:
            response = call(base, method, path, headers[who], "tenant-lx")
            if denied_by_policy(response) == allowed(policy, who):
                wrong.append(f"{who} {method} {path} [{policy.name}] -> {response.status_code}")
            assert response.status_code < 500, f"{who} {method} {path}: {response.text}"
    print(
        f"authorisation matrix: {len(table)} routes x {len(PRINCIPALS)} principals "
        f"= {len(table) * len(PRINCIPALS)} requests"
    )
    assert not wrong, "\n".join(wrong)


def test_another_tenants_buses_do_not_exist_for_a_tenant(
    served: tuple[Any, str, dict[str, Any]],
) -> None:
    app, base, headers = served
    with app.state.platform.backbone.transaction() as conn:  # the matrix may have deleted it
        registry.ensure_bus(conn, name="tenant-lx", tenant="LX")
    bus_routes = [(m, p) for m, p, _ in routes(app) if "{bus}" in p and m != "WEBSOCKET"]
    checked = 0
    for method, path in bus_routes:
        if method == "DELETE" and path == "/api/buses/{bus}":
            continue  # would remove the bus the other checks use; covered below
        for who in ("operations", "admin"):
            other = call(base, method, path, headers[who], "tenant-zrh")
            assert other.status_code == 404, f"{who} {method} {path}: {other.status_code}"
            assert "tenant-zrh" in other.json()["message"]
            own = call(base, method, path, headers[who], "tenant-lx")
            missing = "event bus 'tenant-lx' does not exist"
            assert f'"message":"{missing}"' not in own.text, f"{who} {method} {path}"
            checked += 2
    gone = call(base, "DELETE", "/api/buses/{bus}", headers["operations"], "tenant-zrh")
    assert gone.status_code == 404
    print(f"tenant matrix: {len(bus_routes)} bus routes x 2 roles x own/other = {checked}")
    listed = httpx.get(f"{base}/api/buses", headers=headers["operations"]).json()
    assert [bus["name"] for bus in listed] == ["tenant-lx"]
    everything = httpx.get(f"{base}/api/buses", headers=headers["operator"]).json()
    assert {"default", "audit", "tenant-lx", "tenant-zrh"} <= {bus["name"] for bus in everything}


def test_the_documented_policy_table_is_the_routing_table(
    served: tuple[Any, str, dict[str, Any]],
) -> None:
    app = served[0]
    documented = set(
        re.findall(
            r"^\| `([^`]+)` \| (\w+) \| ([\w-]+) \|$",
            (Path(__file__).parents[2] / "docs" / "security.md").read_text(),
            flags=re.M,
        )
    )
    actual = {(path, method, policy.name) for method, path, policy in routes(app)}
    assert documented == actual, (
        f"docs/security.md lacks {sorted(actual - documented)}; "
        f"documents routes that are not so: {sorted(documented - actual)}"
    )
