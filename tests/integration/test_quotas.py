"""Per-tenant quotas: one tenant's callers cannot flood the database for the others."""

from __future__ import annotations

from fastapi.testclient import TestClient

from jetbridge.api.quotas import MAX_BUSES_PER_TENANT
from jetbridge.app import create_app
from jetbridge.config import Settings
from support.auth import bearer


def test_a_tenant_over_its_write_quota_waits_and_others_do_not(sqlite_url: str) -> None:
    app = create_app(
        Settings(database_url=sqlite_url, run_workers=False, tenant_write_quota="3/minute")
    )
    with TestClient(app) as client:
        lx = bearer(app, roles=("operations",), tenant="LX")
        zrh = bearer(app, roles=("operations",), tenant="ZRH")
        answers = [
            client.post("/api/buses", json={"name": f"lx-{n}"}, headers=lx).status_code
            for n in range(4)
        ]
        assert answers == [201, 201, 201, 429]
        refused = client.post("/api/buses", json={"name": "lx-9"}, headers=lx)
        assert int(refused.headers["Retry-After"]) >= 1
        assert "tenant LX" in refused.json()["message"]
        assert client.get("/api/buses", headers=lx).status_code == 200  # reads go on
        assert client.post("/api/buses", json={"name": "zrh-1"}, headers=zrh).status_code == 201
        operator = bearer(app)
        assert (
            client.post("/api/buses", json={"name": "platform-1"}, headers=operator).status_code
            == 201
        )


def test_a_tenant_holds_a_bounded_number_of_buses(sqlite_url: str) -> None:
    app = create_app(Settings(database_url=sqlite_url, run_workers=False))
    with TestClient(app) as client:
        lx = bearer(app, roles=("operations",), tenant="LX")  # the tenant's own bus counts
        made = [
            client.post("/api/buses", json={"name": f"lx-{n}"}, headers=lx).status_code
            for n in range(MAX_BUSES_PER_TENANT)
        ]
        assert made.count(201) == MAX_BUSES_PER_TENANT - 1 and made[-1] == 429
