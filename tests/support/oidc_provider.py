"""A small OpenID Connect provider for tests: its own RSA and EC keys, a discovery document and a
JWK Set served over real HTTP, and tokens signed with those keys (or with keys it never published).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from support.servers import serve_app

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
REALM = "/realms/jetbridge"


def new_rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def new_ec() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class IdentityProvider:
    """Keys by kid, which of them the JWK Set publishes, and a count of requests per path."""

    def __init__(self) -> None:
        self.keys: dict[str, PrivateKey] = {"rsa-1": new_rsa(), "ec-1": new_ec()}
        self.published: list[str] = ["rsa-1", "ec-1"]
        self.requests: Counter[str] = Counter()
        self.base = ""
        self.discovery_issuer: str | None = None  # None: the real issuer

    @property
    def issuer(self) -> str:
        return f"{self.base}{REALM}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/certs"

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.published:
            public = self.keys[kid].public_key()
            if isinstance(public, rsa.RSAPublicKey):
                # No "alg", as Entra ID publishes them: the token's alg must still fit an RSA key.
                jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
            else:
                jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
                jwk["alg"] = "ES256"
            keys.append({**jwk, "kid": kid, "use": "sig"})
        return {"keys": keys}

    def app(self) -> Starlette:
        async def discovery(request: Request) -> Response:
            self.requests["discovery"] += 1
            return JSONResponse(
                {"issuer": self.discovery_issuer or self.issuer, "jwks_uri": self.jwks_url}
            )

        async def certs(request: Request) -> Response:
            self.requests["jwks"] += 1
            return JSONResponse(self.jwks())

        return Starlette(
            routes=[
                Route(f"{REALM}/.well-known/openid-configuration", discovery),
                Route(f"{REALM}/protocol/openid-connect/certs", certs),
            ]
        )

    @contextmanager
    def serve(self) -> Iterator[IdentityProvider]:
        with serve_app(self.app()) as base:
            self.base = base
            yield self

    def claims(self, audience: str = "jetbridge", **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": f"user-{uuid.uuid4().hex[:8]}",
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        claims.update(extra)
        return {name: value for name, value in claims.items() if value is not None}

    def token(
        self,
        claims: dict[str, Any] | None = None,
        *,
        kid: str | None = "rsa-1",
        alg: str | None = None,
        key: PrivateKey | None = None,
    ) -> str:
        """A token signed with the key `kid` (or `key`, e.g. one never published)."""
        signer = key or self.keys.get(kid or "rsa-1") or self.keys["rsa-1"]
        alg = alg or ("RS256" if isinstance(signer, rsa.RSAPrivateKey) else "ES256")
        headers = {"kid": kid} if kid is not None else {}
        return jwt.encode(claims or self.claims(), signer, algorithm=alg, headers=headers)

    def public_pem(self, kid: str = "rsa-1") -> bytes:
        return (
            self.keys[kid]
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A token put together by hand, as an attacker would."""
    parts = [b64(json.dumps(header).encode()), b64(json.dumps(claims).encode())]
    return ".".join([*parts, b64(signature)])


def hmac_signed(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """A token with an HMAC-SHA256 signature under `secret` (e.g. a public key's PEM)."""
    parts = [b64(json.dumps(header).encode()), b64(json.dumps(claims).encode())]
    signature = hmac.new(secret, ".".join(parts).encode(), hashlib.sha256).digest()
    return ".".join([*parts, b64(signature)])
