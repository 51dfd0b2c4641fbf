"""Tokens from an external OpenID Connect provider (Keycloak, Entra ID, Cognito, ...).

The provider signs JWT access or ID tokens with keys it publishes as a JWK Set; the platform
verifies the signature, the issuer, the audience and the token's lifetime, and maps the provider's
role names to jetbridge roles through an explicit table: a role the table does not name grants
nothing. Every failure is `Unauthenticated` with a message that names the problem and never
repeats the token.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import jwt
from jwt import PyJWK
from jwt import exceptions as jwt_errors

from jetbridge.errors import ConfigurationError, Unauthenticated
from jetbridge.ops.identity.jwks import KeyStore
from jetbridge.ops.identity.principal import ROLES, Principal, Role

if TYPE_CHECKING:
    from jetbridge.config import Settings

ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
ALGORITHMS = (*ASYMMETRIC, "EdDSA")
MAX_TOKEN_BYTES = 16 * 1024
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


@dataclass(frozen=True, slots=True)
class OidcSettings:
    """How to trust one issuer. `roles_claim` and `tenant_claim` are claim names, or dotted paths
    into nested claims (`realm_access.roles`); `role_map` maps provider role names to ours."""

    issuer: str
    audience: str
    jwks_url: str | None = None
    algorithms: tuple[str, ...] = ("RS256", "PS256", "ES256")
    roles_claim: str = "roles"
    role_map: Mapping[str, Role] = field(default_factory=dict)
    tenant_claim: str | None = None
    leeway_seconds: int = 30
    fetch_timeout_seconds: float = 5.0
    min_refresh_seconds: float = 30.0
    max_key_age_seconds: float = 3600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcSettings:
        if not settings.oidc_issuer or not settings.oidc_audience:
            raise ConfigurationError("JETBRIDGE_OIDC_ISSUER and JETBRIDGE_OIDC_AUDIENCE are unset")
        return cls(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            jwks_url=settings.oidc_jwks_url or None,
            algorithms=parse_algorithms(settings.oidc_algorithms),
            roles_claim=settings.oidc_roles_claim,
            role_map=parse_role_map(settings.oidc_role_map),
            tenant_claim=settings.oidc_tenant_claim or None,
            leeway_seconds=settings.oidc_leeway_seconds,
        )


def parse_role_map(text: str) -> dict[str, Role]:
    """`ops-team=operations,airline-admin=admin` as a mapping; names an unknown jetbridge role."""
    mapping: dict[str, Role] = {}
    for entry in (item.strip() for item in text.split(",")):
        if not entry:
            continue
        provider, sep, ours = (part.strip() for part in entry.partition("="))
        if not sep or not provider or not ours:
            raise ConfigurationError(
                f"JETBRIDGE_OIDC_ROLE_MAP: {entry!r} is not provider-role=jetbridge-role"
            )
        role = next((r for r in ROLES if r == ours), None)
        if role is None:
            raise ConfigurationError(
                f"JETBRIDGE_OIDC_ROLE_MAP: {ours!r} is not a jetbridge role ({', '.join(ROLES)})"
            )
        mapping[provider] = role
    return mapping


def parse_algorithms(text: str) -> tuple[str, ...]:
    """The accepted signature algorithms: public-key ones only, never `none` nor HMAC (a public
    key used as an HMAC secret would let anybody sign)."""
    names = tuple(item.strip() for item in text.split(",") if item.strip())
    if not names:
        raise ConfigurationError("JETBRIDGE_OIDC_ALGORITHMS names no algorithm")
    for name in names:
        if name not in ALGORITHMS:
            raise ConfigurationError(
                f"JETBRIDGE_OIDC_ALGORITHMS: {name!r} is not accepted; "
                f"choose among {', '.join(ALGORITHMS)}"
            )
    return names


def oidc_verifier(settings: Settings) -> OidcVerifier | None:
    """The verifier of the configured issuer's tokens, or None when no issuer is configured."""
    if not settings.oidc_issuer:
        return None
    return OidcVerifier(OidcSettings.from_settings(settings))


class OidcVerifier:
    """Turns a bearer token from the issuer into a `Principal` of kind "oidc"."""

    def __init__(
        self,
        settings: OidcSettings,
        *,
        client: httpx.Client | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings
        extra = {} if clock is None else {"clock": clock}
        self.keys = KeyStore(
            issuer=settings.issuer,
            jwks_url=settings.jwks_url,
            timeout_seconds=settings.fetch_timeout_seconds,
            min_refresh_seconds=settings.min_refresh_seconds,
            max_age_seconds=settings.max_key_age_seconds,
            client=client,
            **extra,
        )

    def verify(self, token: str) -> Principal:
        """The caller the token names; raises Unauthenticated. May fetch the issuer's keys (a
        blocking request, bounded by the fetch timeout): async callers use `averify`."""
        kid, alg = self._header(token)
        return self._principal(self._claims(token, self.keys.get(kid, alg), alg))

    async def averify(self, token: str) -> Principal:
        """`verify` for the event loop: a fetch of the keys, when needed, runs in a thread."""
        kid, alg = self._header(token)
        key = self.keys.cached(kid, alg)
        if key is None:
            return await asyncio.to_thread(self.verify, token)
        return self._principal(self._claims(token, key, alg))

    def close(self) -> None:
        self.keys.close()

    def _header(self, token: str) -> tuple[str | None, str]:
        if not isinstance(token, str) or not token:
            raise Unauthenticated("no token was presented")
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthenticated(f"the token is longer than {MAX_TOKEN_BYTES} bytes")
        if token.count(".") != 2:
            raise Unauthenticated("the token is not a signed JWT (three dot-separated parts)")
        try:
            header = jwt.get_unverified_header(token)
        except jwt_errors.PyJWTError:
            raise Unauthenticated("the token's header is malformed") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.settings.algorithms:
            raise Unauthenticated(
                "the token's signature algorithm is not accepted; accepted: "
                + ", ".join(self.settings.algorithms)
            )
        if kid is not None and (not isinstance(kid, str) or len(kid) > 256):
            raise Unauthenticated("the token's key id (kid) is malformed")
        return kid, alg

    def _claims(self, token: str, key: PyJWK, alg: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "sub"], "verify_aud": False},
            )
        except jwt_errors.PyJWTError as exc:
            raise Unauthenticated(_describe(exc)) from None
        if not self._audience_matches(claims):
            raise Unauthenticated("the token was issued for another audience")
        return claims

    def _audience_matches(self, claims: dict[str, Any]) -> bool:
        audience = claims.get("aud")
        if audience is None and claims.get("token_use") == "access":
            # Cognito's access tokens carry the app client in client_id and have no aud.
            return claims.get("client_id") == self.settings.audience
        if isinstance(audience, str):
            return audience == self.settings.audience
        return isinstance(audience, list) and self.settings.audience in audience

    def _principal(self, claims: dict[str, Any]) -> Principal:
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise Unauthenticated("the token's sub claim is not an identifier")
        display = claims.get("preferred_username") or claims.get("name") or ""
        return Principal(
            subject=f"{self.settings.issuer}|{subject}",
            kind="oidc",
            roles=frozenset(self._roles(claims)),
            tenant=self._tenant(claims),
            display=display[:128] if isinstance(display, str) else "",
        )

    def _roles(self, claims: dict[str, Any]) -> set[Role]:
        names = claim_at(claims, self.settings.roles_claim)
        if isinstance(names, str):
            names = names.split()
        if not isinstance(names, list):
            return set()
        mapping = self.settings.role_map
        return {mapping[name] for name in names if isinstance(name, str) and name in mapping}

    def _tenant(self, claims: dict[str, Any]) -> str | None:
        if self.settings.tenant_claim is None:
            return None
        value = claim_at(claims, self.settings.tenant_claim)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if value is None:
            return None
        if not isinstance(value, str) or not _TENANT.fullmatch(value):
            raise Unauthenticated(
                f"the token's {self.settings.tenant_claim} claim does not name one tenant"
            )
        return value


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The claim named `path`, else the nested claim it names with dots (`realm_access.roles`);
    None when absent. Literal names come first: some providers put dots in claim names."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _describe(exc: jwt_errors.PyJWTError) -> str:
    """What was wrong with the token, in words that repeat nothing of it."""
    match exc:
        case jwt_errors.ExpiredSignatureError():
            return "the token has expired"
        case jwt_errors.ImmatureSignatureError():
            return "the token is not valid yet (nbf or iat lies in the future)"
        case jwt_errors.InvalidIssuerError():
            return "the token was issued by another issuer"
        case jwt_errors.MissingRequiredClaimError():
            return f"the token has no {exc.claim} claim"
        case jwt_errors.InvalidSignatureError():
            return "the token's signature does not verify"
        case jwt_errors.InvalidAlgorithmError():
            return "the token's signature algorithm does not fit its signing key"
        case jwt_errors.InvalidIssuedAtError():
            return "the token's iat claim is not a time"
        case jwt_errors.InvalidSubjectError():
            return "the token's sub claim is not an identifier"
        case jwt_errors.DecodeError():
            return "the token is malformed"
    return "the token is not valid"
