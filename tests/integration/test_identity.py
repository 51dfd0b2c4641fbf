"""Identities over the wire: passwords and OAuth2 tokens, refresh rotation, API keys, page sessions
with CSRF, disabled accounts, tenants' administrators, an external OpenID Connect issuer, the
audit trail and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.config import Settings
from support.auth import bearer, ensure_tenant, user
from support.oidc_provider import IdentityProvider


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=database_url, run_workers=False))
    with TestClient(app) as test_client:
        yield test_client


def sign_in(client: TestClient, username: str, password: str) -> httpx.Response:
    return client.post(
        "/api/auth/token",
        data={"grant_type": "password", "username": username, "password": password},
        headers={"Authorization": ""},
    )


def test_password_grant_gives_tokens_that_work_and_wrong_ones_do_not(client: TestClient) -> None:
    user(client.app, "olga", "a long passphrase", roles=("operations",), tenant="LX")
    assert sign_in(client, "olga", "wrong passphrase!").status_code == 401
    assert sign_in(client, "nobody", "a long passphrase").status_code == 401
    tokens = sign_in(client, "OLGA", "a long passphrase").json()  # names ignore case
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 900
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    me = client.get("/api/auth/me", headers=auth).json()
    assert me["roles"] == ["operations"] and me["tenant"] == "LX" and me["name"] == "olga"
    assert client.get("/api/buses", headers=auth).status_code == 200
    assert client.get("/api/users", headers=auth).status_code == 403  # not an admin
    tampered = tokens["access_token"][:-4] + (
        "AAAA" if not tokens["access_token"].endswith("AAAA") else "BBBB"
    )
    assert (
        client.get("/api/buses", headers={"Authorization": f"Bearer {tampered}"}).status_code == 401
    )
    garbage = ["Bearer", "Bearer ", "Basic b2xnYTp4", "Bearer " + "x" * 5000, "Bearer jbk_x_y"]
    for value in garbage:
        answer = client.get("/api/buses", headers={"Authorization": value})
        assert answer.status_code == 401, value
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_refresh_token_is_spent_once_and_a_replay_ends_the_whole_login(
    client: TestClient,
) -> None:
    user(client.app, "pax", "a long passphrase")
    first = sign_in(client, "pax", "a long passphrase").json()["refresh_token"]
    refreshed = client.post(
        "/api/auth/token", data={"grant_type": "refresh_token", "refresh_token": first}
    )
    assert refreshed.status_code == 200
    second = refreshed.json()["refresh_token"]
    replay = client.post(
        "/api/auth/token", data={"grant_type": "refresh_token", "refresh_token": first}
    )
    assert replay.status_code == 401 and "already used" in replay.json()["message"]
    # the replay revoked the family: the legitimate successor is dead too
    after = client.post(
        "/api/auth/token", data={"grant_type": "refresh_token", "refresh_token": second}
    )
    assert after.status_code == 401
    third = sign_in(client, "pax", "a long passphrase").json()["refresh_token"]
    assert client.post("/api/auth/revoke", data={"token": third}).status_code == 204
    revoked = client.post(
        "/api/auth/token", data={"grant_type": "refresh_token", "refresh_token": third}
    )
    assert revoked.status_code == 401


def test_disabling_a_user_ends_their_tokens_at_once(client: TestClient) -> None:
    app = client.app
    user(app, "agent-1", "a long passphrase", roles=("agent",), tenant="LX")
    admin = bearer(app, roles=("admin",), tenant="LX")
    access = sign_in(client, "agent-1", "a long passphrase").json()["access_token"]
    auth = {"Authorization": f"Bearer {access}"}
    assert client.get("/api/auth/me", headers=auth).status_code == 200
    disabled = client.post("/api/users/agent-1/disable", headers=admin)
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert client.get("/api/auth/me", headers=auth).status_code == 401
    assert sign_in(client, "agent-1", "a long passphrase").status_code == 401
    assert client.post("/api/users/agent-1/enable", headers=admin).status_code == 200
    assert sign_in(client, "agent-1", "a long passphrase").status_code == 200


def test_api_keys_are_hashed_scoped_revocable_and_record_their_last_use(
    client: TestClient,
) -> None:
    app = client.app
    ensure_tenant(app, "LX")
    admin = bearer(app, roles=("admin",), tenant="LX")
    made = client.post(
        "/api/api-keys", json={"name": "aodb-connector", "roles": ["service"]}, headers=admin
    ).json()
    key = made["key"]
    assert made["tenant"] == "LX" and key.startswith("jbk_")
    with app.state.platform.engine.connect() as conn:
        stored = json.dumps([list(row) for row in conn.exec_driver_sql("SELECT * FROM api_keys")])
    assert key.split("_", 2)[2] not in stored  # only a hash is kept
    assert client.get("/api/auth/me", headers={"X-Api-Key": key}).json()["tenant"] == "LX"
    listed = client.get("/api/api-keys", headers=admin).json()
    mine = next(item for item in listed if item["key_id"] == made["key_id"])
    assert mine["last_used_at"] is not None and "key" not in mine
    # an administrator grants within their tenant only, and never the passenger role
    other = client.post(
        "/api/api-keys", json={"name": "x", "roles": ["service"], "tenant": "ZRH"}, headers=admin
    )
    assert other.status_code == 403
    passenger = client.post("/api/users", headers=admin, json={
        "username": "pax1", "password": "a long passphrase", "roles": ["passenger"]})  # fmt: skip
    assert passenger.status_code == 403
    revoked = client.post(f"/api/api-keys/{made['key_id']}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert client.get("/api/auth/me", headers={"X-Api-Key": key}).status_code == 401
    # another tenant's administrator does not see the key at all
    zrh_admin = bearer(app, roles=("admin",), tenant="ZRH")
    assert made["key_id"] not in {
        k["key_id"] for k in client.get("/api/api-keys", headers=zrh_admin).json()
    }
    stranger = client.post(f"/api/api-keys/{made['key_id']}/revoke", headers=zrh_admin)
    assert stranger.status_code == 404


def test_a_page_session_needs_its_csrf_token_for_every_change(client: TestClient) -> None:
    app = client.app
    user(app, "ops", "a long passphrase", roles=("operations",), tenant="LX")
    page = client.get("/login?next=/account")
    csrf = page.cookies.get("jb_login_csrf") or client.cookies.get("jb_login_csrf")
    assert csrf and 'name="csrf_token"' in page.text
    forged = client.post("/login", data={"username": "ops", "password": "a long passphrase",
                                         "csrf_token": "forged"}, follow_redirects=False)  # fmt: skip
    assert forged.status_code == 403
    signed = client.post("/login", data={"username": "ops", "password": "a long passphrase",
                                         "csrf_token": csrf, "next": "//evil.example/"},
                         follow_redirects=False)  # fmt: skip
    assert (
        signed.status_code == 303 and signed.headers["location"] == "/account"
    )  # no open redirect
    cookie = signed.headers["set-cookie"]
    assert "jb_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    me = client.get("/api/auth/me").json()
    token = me["csrf_token"]
    assert me["name"] == "ops" and token
    spec = {"name": "ops-bus", "description": ""}
    assert client.post("/api/buses", json=spec).status_code == 403  # a cross-site form could
    made = client.post("/api/buses", json=spec, headers={"X-CSRF-Token": token})
    assert made.status_code == 201 and made.json()["tenant"] == "LX"
    assert "ops" in client.get("/account").text
    assert client.post("/logout", data={"csrf_token": "nope"}).status_code == 403
    out = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    client.cookies.set("jb_session", signed.cookies.get("jb_session") or "")
    assert client.get("/api/auth/me").status_code == 401  # the session ended on the server


def test_passengers_sign_up_as_passengers_only(client: TestClient) -> None:
    made = client.post(
        "/api/auth/register", json={"username": "ada", "password": "analytical engine"}
    )
    assert made.status_code == 201 and made.json()["roles"] == ["passenger"]
    assert (
        client.post(
            "/api/auth/register", json={"username": "ADA", "password": "analytical engine"}
        ).status_code
        == 409
    )
    assert (
        client.post("/api/auth/register", json={"username": "bob", "password": "short"}).status_code
        == 400
    )
    assert client.post("/api/auth/register", json={"username": "bob", "password": "analytical engine",
                                                    "roles": ["admin"]}).status_code == 422  # fmt: skip
    hostile = ["", "a", "x" * 200, "../../etc", "ada\n", "<script>", None, 5, ["a"]]
    for name in hostile:
        answer = client.post(
            "/api/auth/register", json={"username": name, "password": "analytical engine"}
        )
        assert answer.status_code in {400, 422}, name


def test_an_external_openid_connect_issuer_signs_callers_in(sqlite_url: str) -> None:
    with IdentityProvider().serve() as provider:
        settings = Settings(
            database_url=sqlite_url,
            run_workers=False,
            oidc_issuer=provider.issuer,
            oidc_audience="jetbridge",
            oidc_roles_claim="realm_access.roles",
            oidc_role_map="ops-team=operations,airline-admin=admin",
            oidc_tenant_claim="tenant",
        )
        app = create_app(settings)
        with TestClient(app) as client:
            ensure_tenant(app, "LX")
            claims = provider.claims(sub="olga", tenant="LX", realm_access={"roles": ["ops-team"]})
            auth = {"Authorization": f"Bearer {provider.token(claims)}"}
            assert client.get("/api/auth/me", headers=auth).json()["roles"] == ["operations"]
            assert [bus["name"] for bus in client.get("/api/buses", headers=auth).json()] == [
                "tenant-lx"
            ]
            assert client.get("/api/users", headers=auth).status_code == 403
            nobody = provider.token(provider.claims(sub="x", realm_access={"roles": ["guest"]}))
            assert (
                client.get("/api/buses", headers={"Authorization": f"Bearer {nobody}"}).status_code
                == 403
            )
            other = provider.token(provider.claims(audience="another-app", sub="y"))
            assert (
                client.get("/api/buses", headers={"Authorization": f"Bearer {other}"}).status_code
                == 401
            )
            # jetbridge's own accounts keep working beside the external issuer
            user(app, "local", "a long passphrase", roles=("operations",), tenant="LX")
            own = sign_in(client, "local", "a long passphrase").json()["access_token"]
            assert (
                client.get("/api/buses", headers={"Authorization": f"Bearer {own}"}).status_code
                == 200
            )


def test_management_actions_are_audited_and_admins_read_their_tenants_only(
    client: TestClient,
) -> None:
    app = client.app
    operations = bearer(app, roles=("operations",), tenant="LX")
    client.post("/api/buses", json={"name": "lx-ops"}, headers=operations)
    assert client.delete("/api/buses/default", headers=operations).status_code == 404
    assert client.post("/api/tenants", json={"tenant_id": "XX", "kind": "airline", "name": "x"},
                       headers=operations).status_code == 403  # fmt: skip
    lx_admin = bearer(app, roles=("admin",), tenant="LX")
    trail = client.get("/api/audit", headers=lx_admin).json()
    actions = [(entry["action"], entry["outcome"]) for entry in trail]
    assert ("POST /api/buses", "allowed") in actions
    assert ("POST /api/tenants", "denied") in actions
    assert all(entry["tenant"] == "LX" for entry in trail)
    assert all(entry["actor"].startswith("key:") and entry["origin"] for entry in trail)
    zrh_admin = bearer(app, roles=("admin",), tenant="ZRH")
    assert client.get("/api/audit", headers=zrh_admin).json() == []
    assert client.get("/api/audit", headers=operations).status_code == 403


def test_the_cli_makes_the_first_admin_and_manages_keys(sqlite_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "JETBRIDGE_DATABASE_URL": sqlite_url}

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "jetbridge.cli", *args],
            env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    made = cli("users", "create", "root", "--roles", "admin", "--password-stdin",
               stdin="operator passphrase\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "operator passphrase" not in made.stdout
    assert (
        cli("tenants", "create", "--id", "LX", "--kind", "airline", "--name", "Swiss").returncode
        == 0
    )
    key = cli("api-keys", "create", "--name", "aodb", "--roles", "service", "--tenant", "LX")
    assert key.returncode == 0, key.stderr
    made_key = json.loads(key.stdout)
    assert made_key["key"].startswith("jbk_")
    listed = json.loads(cli("api-keys", "list").stdout)
    assert [k["key_id"] for k in listed] == [made_key["key_id"]] and "key" not in listed[0]
    assert cli("api-keys", "revoke", made_key["key_id"]).returncode == 0
    assert json.loads(cli("api-keys", "list").stdout)[0]["revoked_at"] is not None
    assert cli("users", "disable", "root").returncode == 0
    assert json.loads(cli("users", "list").stdout)[0]["disabled"] is True
    bad = cli(
        "users", "create", "x", "--roles", "pilot", "--password-stdin", stdin="long enough pass\n"
    )
    assert bad.returncode == 2 and "unknown role" in bad.stderr
    short = cli("users", "create", "yuri", "--roles", "admin", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "password" in short.stderr
