"""jetbridge's own credentials: short-lived JWT access tokens, rotating refresh tokens, and page
sessions with their CSRF token. Refresh tokens and sessions are random strings of which only a
hash is stored; a refresh token used twice revokes its whole family (a stolen copy was used)."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from sqlalchemy import Connection, insert, select, update

from jetbridge.errors import Unauthenticated
from jetbridge.ops.identity.principal import Principal
from jetbridge.storage.schema import credentials

ISSUER = "jetbridge"
ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class TokenSettings:
    secret: bytes
    access_seconds: int = 900
    refresh_seconds: int = 30 * 86400
    session_seconds: int = 12 * 3600


class RefreshTokenReplayed(Unauthenticated):
    """A spent refresh token came back: its family must be revoked (in a transaction of its
    own, since the caller's rolls back with this error)."""

    def __init__(self, family: str) -> None:
        super().__init__("the refresh token was already used; every token of its login ends")
        self.family = family


def revoke_family(conn: Connection, *, family: str) -> None:
    _revoke(conn, credentials.c.family == family)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_access_token(settings: TokenSettings, principal: Principal) -> tuple[str, int]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": principal.subject,
        "typ": "access",
        "roles": sorted(principal.roles),
        "tenant": principal.tenant,
        "name": principal.display,
        "iat": now,
        "exp": now + settings.access_seconds,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.secret, algorithm=ALGORITHM), settings.access_seconds


def verify_access_token(settings: TokenSettings, token: str) -> Principal:
    """The principal an access token of ours names; Unauthenticated if it is not valid now."""
    try:
        claims = jwt.decode(
            token,
            settings.secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"]},
            leeway=5,
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the access token has expired; refresh it") from None
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"the access token is not valid: {type(exc).__name__}") from None
    roles = claims.get("roles")
    if claims.get("typ") != "access" or not isinstance(roles, list):
        raise Unauthenticated("the token is not an access token")
    tenant = claims.get("tenant")
    return Principal(
        subject=str(claims["sub"]),
        kind="user",
        roles=frozenset(str(role) for role in roles),
        tenant=tenant if isinstance(tenant, str) else None,
        display=str(claims.get("name") or ""),
    )


def _store(
    conn: Connection,
    *,
    kind: str,
    user_id: str,
    family: str,
    lifetime: int,
    csrf: str | None = None,
) -> str:
    token = secrets.token_urlsafe(32)
    now = time.time()
    conn.execute(
        insert(credentials).values(
            token_hash=_hash(token),
            kind=kind,
            user_id=user_id,
            family=family,
            csrf=csrf,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    return token


def issue_refresh_token(conn: Connection, settings: TokenSettings, *, user_id: str) -> str:
    return _store(
        conn,
        kind="refresh",
        user_id=user_id,
        family=str(uuid.uuid4()),
        lifetime=settings.refresh_seconds,
    )


def rotate_refresh_token(
    conn: Connection, settings: TokenSettings, *, token: str
) -> tuple[str, str]:
    """Spend a refresh token: (user id, its replacement). A spent or revoked one presented again
    revokes every token of its family."""
    row = _find(conn, token, kind="refresh")
    now = time.time()
    if row is None:
        raise Unauthenticated("the refresh token is not valid")
    if row["revoked_at"] is not None:
        raise RefreshTokenReplayed(str(row["family"]))
    if row["expires_at"] <= now:
        raise Unauthenticated("the refresh token has expired; sign in again")
    _revoke(conn, credentials.c.token_hash == row["token_hash"])
    replacement = _store(
        conn,
        kind="refresh",
        user_id=row["user_id"],
        family=row["family"],
        lifetime=settings.refresh_seconds,
    )
    return str(row["user_id"]), replacement


def revoke_refresh_token(conn: Connection, *, token: str) -> None:
    row = _find(conn, token, kind="refresh")
    if row is not None:
        _revoke(conn, credentials.c.family == row["family"])


def open_session(conn: Connection, settings: TokenSettings, *, user_id: str) -> tuple[str, str]:
    """A page session: (cookie value, CSRF token)."""
    csrf = secrets.token_urlsafe(24)
    token = _store(
        conn,
        kind="session",
        user_id=user_id,
        family=str(uuid.uuid4()),
        lifetime=settings.session_seconds,
        csrf=csrf,
    )
    return token, csrf


def find_session(conn: Connection, token: str) -> dict[str, Any] | None:
    """The live session a cookie names (with its user id and CSRF token), or None."""
    row = _find(conn, token, kind="session")
    if row is None or row["revoked_at"] is not None or row["expires_at"] <= time.time():
        return None
    return row


def close_session(conn: Connection, *, token: str) -> None:
    _revoke(conn, credentials.c.token_hash == _hash(token))


def revoke_user_credentials(conn: Connection, *, user_id: str) -> None:
    _revoke(conn, credentials.c.user_id == user_id)


def _find(conn: Connection, token: str, *, kind: str) -> dict[str, Any] | None:
    if not token or len(token) > 128:
        return None
    query = select(credentials).where(
        credentials.c.token_hash == _hash(token), credentials.c.kind == kind
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def _revoke(conn: Connection, condition: Any) -> None:
    conn.execute(
        update(credentials)
        .where(condition, credentials.c.revoked_at.is_(None))
        .values(revoked_at=time.time())
    )
