"""Tenants, users and API keys as stored: only hashes of secrets are kept."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import uuid
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from jetbridge.errors import Conflict, InvalidRequest, NotFound
from jetbridge.ops.identity.passwords import hash_password, needs_rehash, verify_password
from jetbridge.ops.identity.principal import ROLES, Principal
from jetbridge.storage.schema import api_keys, tenants, users

TENANT_ID = re.compile(r"^[A-Z0-9]{2,8}$")
USERNAME = re.compile(r"^[A-Za-z0-9._@+-]{3,128}$")
KEY_PREFIX = "jbk_"
# last_used_at is written at most this often per key, so busy machines do not write per request.
LAST_USED_GRANULARITY = 60.0


def parse_roles(value: str | list[str] | tuple[str, ...] | frozenset[str]) -> frozenset[str]:
    names = value.split(",") if isinstance(value, str) else list(value)
    roles = frozenset(name.strip() for name in names if name.strip())
    unknown = sorted(roles.difference(ROLES))
    if unknown:
        raise InvalidRequest(f"roles: unknown role(s) {unknown}; known: {list(ROLES)}")
    if not roles:
        raise InvalidRequest("roles: at least one role is required")
    return roles


def _roles_text(roles: frozenset[str]) -> str:
    return ",".join(sorted(roles))


# Tenants --------------------------------------------------------------------------------------


def create_tenant(conn: Connection, *, tenant_id: str, kind: str, name: str) -> dict[str, Any]:
    """An airline (IATA/ICAO designator) or an airport (IATA/ICAO code), with its own bus."""
    from jetbridge.events.registry import ensure_bus

    if not TENANT_ID.fullmatch(tenant_id):
        raise InvalidRequest(f"tenant: {tenant_id!r} is not 2-8 capital letters or digits")
    if kind not in {"airline", "airport"}:
        raise InvalidRequest(f"kind: {kind!r} is not airline or airport")
    if conn.execute(select(tenants.c.tenant_id).where(tenants.c.tenant_id == tenant_id)).first():
        raise Conflict(f"tenant {tenant_id!r} exists")
    bus = tenant_bus(tenant_id)
    ensure_bus(conn, name=bus, description=f"{name} ({kind} {tenant_id})", tenant=tenant_id)
    row = {
        "tenant_id": tenant_id,
        "kind": kind,
        "name": name[:128],
        "bus": bus,
        "created_at": time.time(),
    }
    conn.execute(insert(tenants).values(**row))
    return row


def tenant_bus(tenant_id: str) -> str:
    """Each tenant's own event bus (one bus per airline, as in the reference design)."""
    return f"tenant-{tenant_id.lower()}"


def list_tenants(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(tenants).order_by(tenants.c.tenant_id)).mappings()
    return [dict(row) for row in rows]


def get_tenant(conn: Connection, tenant_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(tenants).where(tenants.c.tenant_id == tenant_id)).mappings().first()
    return dict(row) if row else None


def require_tenant(conn: Connection, tenant_id: str | None) -> None:
    if tenant_id is not None and get_tenant(conn, tenant_id) is None:
        raise InvalidRequest(f"tenant: {tenant_id!r} does not exist")


# Users ----------------------------------------------------------------------------------------


def create_user(
    conn: Connection,
    *,
    username: str,
    password: str,
    roles: frozenset[str],
    tenant: str | None,
) -> dict[str, Any]:
    if not USERNAME.fullmatch(username):
        raise InvalidRequest("username: 3-128 letters, digits or . _ @ + -")
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    require_tenant(conn, tenant)
    if "passenger" not in roles and tenant is None and "admin" not in roles:
        raise InvalidRequest("tenant: staff accounts belong to an airline or an airport")
    taken = select(users.c.user_id).where(func.lower(users.c.username) == username.lower())
    if conn.execute(taken).first():
        raise Conflict(f"user {username!r} exists")
    row = {
        "user_id": str(uuid.uuid4()),
        "username": username,
        "password_hash": hashed,
        "roles": _roles_text(roles),
        "tenant": tenant,
        "disabled": False,
        "created_at": time.time(),
    }
    conn.execute(insert(users).values(**row))
    return _user_view(row)


def _user_view(row: Any) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "username": row["username"],
        "roles": sorted(str(row["roles"]).split(",")),
        "tenant": row["tenant"],
        "disabled": bool(row["disabled"]),
        "created_at": row["created_at"],
        "last_login_at": row.get("last_login_at"),
    }


def list_users(conn: Connection, *, tenant: str | None, all_tenants: bool) -> list[dict[str, Any]]:
    query = select(users).order_by(users.c.username)
    if not all_tenants:
        query = query.where(users.c.tenant == tenant)
    return [_user_view(row) for row in conn.execute(query).mappings()]


def get_user(conn: Connection, user_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(users).where(users.c.user_id == user_id)).mappings().first()
    return dict(row) if row else None


def find_user(conn: Connection, username: str) -> dict[str, Any] | None:
    query = select(users).where(func.lower(users.c.username) == username.lower())
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def set_user_disabled(conn: Connection, *, username: str, disabled: bool) -> dict[str, Any]:
    user = find_user(conn, username)
    if user is None:
        raise NotFound(f"user {username!r} does not exist")
    conn.execute(update(users).where(users.c.user_id == user["user_id"]).values(disabled=disabled))
    if disabled:
        from jetbridge.ops.identity.tokens import revoke_user_credentials

        revoke_user_credentials(conn, user_id=user["user_id"])
    user["disabled"] = disabled
    return _user_view(user)


def check_password(conn: Connection, *, username: str, password: str) -> dict[str, Any] | None:
    """The active user with this name and password, or None (same cost either way)."""
    user = find_user(conn, username) if len(username) <= 128 else None
    ok = verify_password(user["password_hash"] if user else None, password)
    if not ok or user is None or user["disabled"]:
        return None
    values: dict[str, Any] = {"last_login_at": time.time()}
    if needs_rehash(user["password_hash"]):
        values["password_hash"] = hash_password(password)
    conn.execute(update(users).where(users.c.user_id == user["user_id"]).values(**values))
    return user


def user_principal(user: dict[str, Any]) -> Principal:
    return Principal(
        subject=f"user:{user['user_id']}",
        kind="user",
        roles=frozenset(str(user["roles"]).split(",")),
        tenant=user["tenant"],
        display=user["username"],
    )


# API keys -------------------------------------------------------------------------------------


def _digest(secret: str) -> str:
    # API key secrets are 256 random bits: a plain hash suffices, and costs nothing per request.
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(
    conn: Connection,
    *,
    name: str,
    roles: frozenset[str],
    tenant: str | None,
    created_by: str,
    expires_at: float | None = None,
) -> dict[str, Any]:
    """A new key; the returned `key` is shown once and never stored."""
    require_tenant(conn, tenant)
    if "passenger" in roles:
        raise InvalidRequest("roles: API keys are for machines and staff, not passengers")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    row = {
        "key_id": key_id,
        "name": name[:128],
        "secret_hash": _digest(secret),
        "roles": _roles_text(roles),
        "tenant": tenant,
        "created_by": created_by[:128],
        "created_at": time.time(),
        "expires_at": expires_at,
    }
    conn.execute(insert(api_keys).values(**row))
    return {**_key_view(row), "key": f"{KEY_PREFIX}{key_id}_{secret}"}


def _key_view(row: Any) -> dict[str, Any]:
    return {
        "key_id": row["key_id"],
        "name": row["name"],
        "roles": sorted(str(row["roles"]).split(",")),
        "tenant": row["tenant"],
        "created_by": row["created_by"],
        "created_at": row["created_at"],
        "expires_at": row.get("expires_at"),
        "revoked_at": row.get("revoked_at"),
        "last_used_at": row.get("last_used_at"),
    }


def list_api_keys(
    conn: Connection, *, tenant: str | None, all_tenants: bool
) -> list[dict[str, Any]]:
    query = select(api_keys).order_by(api_keys.c.created_at)
    if not all_tenants:
        query = query.where(api_keys.c.tenant == tenant)
    return [_key_view(row) for row in conn.execute(query).mappings()]


def get_api_key(conn: Connection, key_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).mappings().first()
    return dict(row) if row else None


_key_changes = 0


def key_changes() -> int:
    """How many times this process revoked a key: a key checked before then is checked again."""
    return _key_changes


def revoke_api_key(conn: Connection, *, key_id: str) -> dict[str, Any]:
    global _key_changes
    _key_changes += 1
    row = get_api_key(conn, key_id)
    if row is None:
        raise NotFound(f"API key {key_id!r} does not exist")
    if row["revoked_at"] is None:
        row["revoked_at"] = time.time()
        conn.execute(
            update(api_keys).where(api_keys.c.key_id == key_id).values(revoked_at=row["revoked_at"])
        )
    return _key_view(row)


def authenticate_api_key(conn: Connection, presented: str) -> Principal | None:
    """The principal of a presented `jbk_<id>_<secret>` key, or None if unknown or revoked.
    Records when the key was last used (at most once a minute), in `conn`'s transaction."""
    principal, stale = check_api_key(conn, presented)
    if principal is not None and stale:
        touch_api_key(conn, principal.subject.removeprefix("key:"))
    return principal


def check_api_key(conn: Connection, presented: str) -> tuple[Principal | None, bool]:
    """The principal of a presented key (None if unknown, revoked or expired), and whether its
    last use is older than a minute: a read only, so checking a key never takes a write lock."""
    if not presented.startswith(KEY_PREFIX) or len(presented) > 128:
        return None, False
    key_id, _, secret = presented.removeprefix(KEY_PREFIX).partition("_")
    row = get_api_key(conn, key_id) if key_id and secret else None
    expected = row["secret_hash"] if row else _digest("")
    if not secrets.compare_digest(expected, _digest(secret)) or row is None:
        return None, False
    now = time.time()
    if row["revoked_at"] is not None or (row["expires_at"] and row["expires_at"] <= now):
        return None, False
    stale = row["last_used_at"] is None or now - row["last_used_at"] > LAST_USED_GRANULARITY
    return _key_principal(key_id, row), stale


def touch_api_key(conn: Connection, key_id: str) -> None:
    """Record that the key was used now."""
    used = update(api_keys).where(api_keys.c.key_id == key_id).values(last_used_at=time.time())
    conn.execute(used)


def _key_principal(key_id: str, row: Any) -> Principal:
    return Principal(
        subject=f"key:{key_id}",
        kind="api_key",
        roles=frozenset(str(row["roles"]).split(",")),
        tenant=row["tenant"],
        display=row["name"],
    )
