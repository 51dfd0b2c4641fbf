"""Credentials for tests: API keys made directly in the platform's database."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jetbridge.ops.identity import store
from jetbridge.storage.transient import retry_transient


def ensure_tenant(app: Any, tenant: str, kind: str = "airline") -> None:
    platform = app.state.platform

    def write() -> None:
        with platform.engine.begin() as conn:
            if store.get_tenant(conn, tenant) is None:
                store.create_tenant(conn, tenant_id=tenant, kind=kind, name=f"Tenant {tenant}")

    # The platform's own writers may hold the database a moment (tests that shorten the
    # SQLite busy timeout meet them): retried as the platform retries its own writes.
    retry_transient(write, what="making a test tenant")


def api_key(app: Any, *, roles: Iterable[str] = ("admin",), tenant: str | None = None) -> str:
    """A new API key with these roles (the platform's operator by default)."""
    if tenant is not None:
        ensure_tenant(app, tenant)
    platform = app.state.platform

    def write() -> dict[str, Any]:
        with platform.engine.begin() as conn:
            return store.create_api_key(
                conn, name="test", roles=frozenset(roles), tenant=tenant, created_by="tests"
            )

    return str(retry_transient(write, what="making a test API key")["key"])


def bearer(app: Any, **grant: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key(app, **grant)}"}


def as_operator(client: Any) -> Any:
    """Sign a TestClient in as the platform's operator (admin of no tenant)."""
    client.headers.update(bearer(client.app))
    return client


def user(
    app: Any,
    username: str,
    password: str = "correct horse battery",
    *,
    roles: Iterable[str] = ("passenger",),
    tenant: str | None = None,
) -> dict[str, Any]:
    """A user made directly in the platform's database."""
    if tenant is not None:
        ensure_tenant(app, tenant)
    platform = app.state.platform
    with platform.engine.begin() as conn:
        return store.create_user(
            conn, username=username, password=password, roles=frozenset(roles), tenant=tenant
        )


def browser_sign_in(page: Any, base: str, username: str, password: str) -> None:
    """Sign in through the login page, as a person would."""
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#sign-in")
    page.wait_for_url(f"{base}/account")
