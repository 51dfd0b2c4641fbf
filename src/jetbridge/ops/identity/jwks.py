"""An OpenID Connect issuer's public signing keys: fetched with a timeout, cached, refreshed
when a token names a key not yet seen, but at most once per interval so that tokens with made-up
key ids cannot make the platform hammer the issuer."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from jetbridge.errors import Unauthenticated

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 1024 * 1024

# Which signature algorithms each kind of key may verify: a token cannot pick an algorithm its key
# was not made for (an RSA key never verifies an HMAC, a P-256 key never an ES384 signature).
COMPATIBLE: dict[tuple[str, str | None], frozenset[str]] = {
    ("RSA", None): frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
    ("EC", "P-256"): frozenset({"ES256"}),
    ("EC", "P-384"): frozenset({"ES384"}),
    ("EC", "P-521"): frozenset({"ES512"}),
    ("OKP", "Ed25519"): frozenset({"EdDSA"}),
    ("OKP", "Ed448"): frozenset({"EdDSA"}),
}


class KeyStore:
    """The issuer's signing keys by key id (`kid`). Thread-safe; one fetch at a time."""

    def __init__(
        self,
        *,
        issuer: str,
        jwks_url: str | None,
        timeout_seconds: float = 5.0,
        min_refresh_seconds: float = 30.0,
        max_age_seconds: float = 3600.0,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.jwks_url = jwks_url
        self.min_refresh_seconds = min_refresh_seconds
        self.max_age_seconds = max_age_seconds
        self.client = client or httpx.Client(timeout=timeout_seconds, follow_redirects=False)
        self.clock = clock
        self.fetches = 0
        self._keys: dict[str | None, dict[str, Any]] = {}
        self._prepared: dict[tuple[str | None, str], PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = threading.Lock()

    def cached(self, kid: str | None, alg: str) -> PyJWK | None:
        """The key if it is known and fresh, without fetching anything."""
        if self._stale():
            return None
        jwk = self._lookup(kid)
        return None if jwk is None else self._prepare(kid, jwk, alg)

    def get(self, kid: str | None, alg: str) -> PyJWK:
        """The key named `kid` ready to verify `alg`; fetches the key set when the key is unknown
        or the set is old, unless it was fetched less than `min_refresh_seconds` ago."""
        key = self.cached(kid, alg)
        if key is not None:
            return key
        with self._lock:
            if (self._stale() or self._lookup(kid) is None) and self._may_fetch():
                self._refresh()
            jwk = self._lookup(kid)
        if jwk is None:
            if self._fetched_at is None:
                raise Unauthenticated(
                    "the identity provider's signing keys cannot be fetched; try again later"
                )
            raise Unauthenticated("the token is not signed by one of the issuer's keys")
        return self._prepare(kid, jwk, alg)

    def close(self) -> None:
        self.client.close()

    def _lookup(self, kid: str | None) -> dict[str, Any] | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _stale(self) -> bool:
        fetched = self._fetched_at
        return fetched is None or self.clock() - fetched > self.max_age_seconds

    def _may_fetch(self) -> bool:
        attempted = self._attempted_at
        return attempted is None or self.clock() - attempted >= self.min_refresh_seconds

    def _prepare(self, kid: str | None, jwk: dict[str, Any], alg: str) -> PyJWK:
        prepared = self._prepared.get((kid, alg))
        if prepared is not None:
            return prepared
        declared = jwk.get("alg")
        allowed = COMPATIBLE.get((jwk["kty"], jwk.get("crv") if jwk["kty"] != "RSA" else None))
        if (declared is not None and declared != alg) or allowed is None or alg not in allowed:
            raise Unauthenticated("the token's signature algorithm does not fit its signing key")
        try:
            prepared = PyJWK(jwk, algorithm=alg)
        except PyJWTError:
            raise Unauthenticated("the token's signing key cannot verify its algorithm") from None
        self._prepared[(kid, alg)] = prepared
        return prepared

    def _refresh(self) -> None:
        self._attempted_at = self.clock()
        self.fetches += 1
        url = self.jwks_url
        try:
            if url is None:
                url = self.jwks_url = self._discover()
            keys = signing_keys(self._get_json(url))
        except (httpx.HTTPError, ValueError) as exc:
            # Keys already known stay in use: a provider outage does not sign everybody out.
            log.warning("cannot fetch the OpenID Connect signing keys: %s", exc)
            return
        self._keys = keys
        self._prepared = {}
        self._fetched_at = self.clock()

    def _discover(self) -> str:
        url = f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"
        document = self._get_json(url)
        if document.get("issuer") != self.issuer:
            raise ValueError(f"{url} names another issuer than JETBRIDGE_OIDC_ISSUER")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise ValueError(f"{url} has no jwks_uri")
        return jwks_uri

    def _get_json(self, url: str) -> dict[str, Any]:
        with self.client.stream("GET", url, headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise ValueError(f"{url} answered HTTP {response.status_code}")
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise ValueError(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
        try:
            document = json.loads(body)
        except ValueError:
            raise ValueError(f"{url} did not send JSON") from None
        if not isinstance(document, dict):
            raise ValueError(f"{url} did not send a JSON object")
        return document


def signing_keys(document: dict[str, Any]) -> dict[str | None, dict[str, Any]]:
    """The usable public signing keys of a JWK Set by kid; symmetric and encryption keys are
    left out. Raises ValueError when none is left."""
    keys: dict[str | None, dict[str, Any]] = {}
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise ValueError("the JWK Set has no keys list")
    for jwk in entries:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        kid = jwk.get("kid")
        if jwk.get("kty") not in {"RSA", "EC", "OKP"} or not isinstance(kid, str | None):
            continue
        if "d" in jwk:  # a private key published by mistake is not trusted for anything
            continue
        try:
            PyJWK(jwk)
        except PyJWTError:
            continue
        keys.setdefault(kid, jwk)
    if not keys:
        raise ValueError("the JWK Set holds no usable public signing key")
    return keys
