"""From a request's credentials to a Principal: API keys, our own access tokens, an external
OpenID Connect issuer's tokens, or a page session cookie. Presented credentials that do not hold
are refused (401), never treated as anonymous."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from sqlalchemy import Engine

from jetbridge.errors import Unauthenticated
from jetbridge.loops import this_loops
from jetbridge.ops.identity import store, tokens
from jetbridge.ops.identity.principal import ANONYMOUS, Principal
from jetbridge.ops.identity.tokens import TokenSettings

SESSION_COOKIE = "jb_session"
# A checked API key is believed this long (seconds) before the database is asked again; a key
# revoked in this process is asked about again at once, one revoked elsewhere within this time.
KEY_CHECK_SECONDS = 1.0
MAX_CHECKED_KEYS = 10_000
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True, slots=True)
class Authenticated:
    principal: Principal
    # Set when the credential is a page session cookie: unsafe requests must echo this token.
    csrf: str | None = None
    session: str | None = None


class Authenticator:
    def __init__(
        self,
        engine: Engine,
        token_settings: TokenSettings,
        *,
        external: Callable[[str], Principal] | None = None,
    ) -> None:
        self.engine = engine
        self.tokens = token_settings
        self.external = external
        # sha256 of a presented key -> (checked at, revocations seen then, its principal)
        self._checked: dict[bytes, tuple[float, int, Principal]] = {}
        # Full checks of a key under way, by event loop and key digest (`check_together`).
        self._checking: dict[asyncio.AbstractEventLoop, dict[bytes, asyncio.Future[Principal]]] = {}

    def recent(self, *, authorization: str | None, api_key: str | None) -> Authenticated | None:
        """The caller of an API key checked within the last `KEY_CHECK_SECONDS`, without asking
        the database (so without blocking); None when the credential must be checked in full."""
        presented = _presented_key(authorization, api_key)
        if presented is None:
            return None
        found = self._checked.get(_digest(presented))
        if found is None:
            return None
        checked_at, changes, principal = found
        if changes != store.key_changes() or time.monotonic() - checked_at > KEY_CHECK_SECONDS:
            return None
        return Authenticated(principal)

    async def check_together(
        self, *, authorization: str | None, api_key: str | None
    ) -> Authenticated | None:
        """An API key not checked lately (see `recent`), checked in full in a worker thread
        once for all the requests on this event loop presenting it meanwhile: when its check
        runs out under load, one query answers them, rather than one each in the threads and
        the pool's connections. None when the request presents no API key."""
        presented = _presented_key(authorization, api_key)
        if presented is None:
            return None
        pending = this_loops(self._checking, dict)
        digest = _digest(presented)
        check = pending.get(digest)
        if check is None:
            check = asyncio.ensure_future(asyncio.to_thread(self._api_key, presented))
            pending[digest] = check
            check.add_done_callback(lambda _: pending.pop(digest, None))
        # One caller going away does not cancel the check the others wait for.
        return Authenticated(await asyncio.shield(check))

    def authenticate(
        self, *, authorization: str | None, api_key: str | None, session: str | None
    ) -> Authenticated:
        if authorization:
            scheme, _, credential = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not credential.strip():
                raise Unauthenticated("Authorization: expected 'Bearer <token or API key>'")
            return Authenticated(self.bearer(credential.strip()))
        if api_key:
            return Authenticated(self._api_key(api_key.strip()))
        if session:
            return self._session(session)
        return Authenticated(ANONYMOUS)

    def bearer(self, credential: str) -> Principal:
        if credential.startswith(store.KEY_PREFIX):
            return self._api_key(credential)
        if self.external is not None and _issuer(credential) != tokens.ISSUER:
            return self.external(credential)
        principal = tokens.verify_access_token(self.tokens, credential)
        self._still_active(principal)
        return principal

    def _api_key(self, presented: str) -> Principal:
        changes = store.key_changes()
        # A read: concurrent requests never queue for the write lock just to be let in.
        with self.engine.connect() as conn:
            conn.execution_options(readonly=True)
            principal, stale = store.check_api_key(conn, presented)
        if principal is not None and stale:
            with self.engine.begin() as conn:
                store.touch_api_key(conn, principal.subject.removeprefix("key:"))
        if principal is None:
            raise Unauthenticated("the API key is not valid (unknown, revoked or expired)")
        if len(self._checked) >= MAX_CHECKED_KEYS:
            self._checked.clear()
        self._checked[_digest(presented)] = (time.monotonic(), changes, principal)
        return principal

    def _session(self, cookie: str) -> Authenticated:
        with self.engine.connect() as conn:
            row = tokens.find_session(conn, cookie)
            user = store.get_user(conn, row["user_id"]) if row else None
        if row is None or user is None or user["disabled"]:
            raise Unauthenticated("the session has ended; sign in again")
        return Authenticated(store.user_principal(user), csrf=row["csrf"], session=cookie)

    def _still_active(self, principal: Principal) -> None:
        """An access token outlives nothing: a disabled user's tokens stop at once."""
        user_id = principal.subject.removeprefix("user:")
        with self.engine.connect() as conn:
            user = store.get_user(conn, user_id)
        if user is None or user["disabled"]:
            raise Unauthenticated("the account behind this token is disabled")


def _issuer(token: str) -> str | None:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return issuer if isinstance(issuer, str) else None


def _presented_key(authorization: str | None, api_key: str | None) -> str | None:
    """The API key a request presents (as `authenticate` reads it), or None for anything else."""
    if authorization:
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() == "bearer" and credential.startswith(store.KEY_PREFIX):
            return credential
        return None
    if api_key:
        return api_key.strip()
    return None


def _digest(presented: str) -> bytes:
    return hashlib.sha256(presented.encode("utf-8", "replace")).digest()
