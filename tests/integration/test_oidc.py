"""Tokens from an external OpenID Connect provider, verified against its keys served over HTTP."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from jetbridge.config import Settings
from jetbridge.errors import Unauthenticated
from jetbridge.ops.identity.oidc import OidcSettings, OidcVerifier, oidc_verifier
from support import aio
from support.oidc_provider import IdentityProvider, hmac_signed, new_rsa, unsigned
from support.servers import free_port


class Clock:
    """The verifier's monotonic clock, moved on by the test instead of waited for."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def provider() -> Iterator[IdentityProvider]:
    with IdentityProvider().serve() as served:
        yield served


def verifier_for(provider: IdentityProvider, clock: Clock | None = None, **options: Any) -> Any:
    settings = {
        "issuer": provider.issuer,
        "audience": "jetbridge",
        "roles_claim": "realm_access.roles",
        "role_map": {"ops-team": "operations", "airline-admin": "admin"},
        "tenant_claim": "tenant",
        **options,
    }
    return OidcVerifier(OidcSettings(**settings), clock=clock)


def rejected(verifier: OidcVerifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(token)
    message = str(caught.value)
    for part in token.split("."):
        if len(part) > 8:
            assert part not in message  # the token is never repeated
    return message


def test_keycloak_token_gives_mapped_roles_and_tenant(provider: IdentityProvider) -> None:
    verifier = verifier_for(provider)
    claims = provider.claims(
        sub="7f0c",
        preferred_username="olga",
        tenant="LX",
        realm_access={"roles": ["ops-team", "offline_access", "uma_authorization", "admin"]},
    )
    principal = verifier.verify(provider.token(claims))
    assert principal.kind == "oidc"
    assert principal.subject == f"{provider.issuer}|7f0c"
    assert principal.roles == frozenset({"operations"})  # "admin" is not in the map: ignored
    assert principal.tenant == "LX"
    assert principal.display == "olga"
    assert principal.authenticated and not principal.is_operator
    # the JWK Set was found through the discovery document, and both are cached
    before = provider.requests.copy()
    verifier.verify(provider.token(claims))
    verifier.verify(provider.token(claims, kid="ec-1"))
    assert provider.requests == before


def test_entra_token_with_roles_claim_and_audience_list(provider: IdentityProvider) -> None:
    verifier = verifier_for(
        provider,
        audience="api://jetbridge",
        roles_claim="roles",
        role_map={"Operations.ReadWrite": "operations", "Agents": "agent"},
        tenant_claim="extn.jetbridgeTenant",
        algorithms=("RS256", "PS256"),
    )
    claims = provider.claims(
        audience="api://jetbridge",
        roles=["Operations.ReadWrite", "Agents", "Directory.Read"],
        name="Olga Meier",
        **{"extn.jetbridgeTenant": "ZRH"},
    )
    claims["aud"] = ["api://other", "api://jetbridge"]
    principal = verifier.verify(provider.token(claims, alg="PS256"))
    assert principal.roles == frozenset({"operations", "agent"})
    assert principal.tenant == "ZRH"
    assert principal.display == "Olga Meier"


def test_cognito_access_token_with_groups_and_custom_tenant(provider: IdentityProvider) -> None:
    verifier = verifier_for(
        provider,
        audience="app-client-1",
        roles_claim="cognito:groups",
        role_map={"agents": "agent", "passengers": "passenger"},
        tenant_claim="custom:tenant",
    )
    claims = provider.claims(
        audience=None,
        token_use="access",
        client_id="app-client-1",
        **{"cognito:groups": ["agents"], "custom:tenant": "LX"},
    )
    principal = verifier.verify(provider.token(claims, kid="ec-1"))
    assert principal.roles == frozenset({"agent"}) and principal.tenant == "LX"
    other_client = {**claims, "client_id": "app-client-2"}
    assert "audience" in rejected(verifier, provider.token(other_client, kid="ec-1"))


def test_token_without_mapped_roles_or_tenant_gets_none(provider: IdentityProvider) -> None:
    verifier = verifier_for(provider)
    for extra in [{}, {"realm_access": {"roles": ["root", "admin"]}}, {"realm_access": "admin"}]:
        principal = verifier.verify(provider.token(provider.claims(**extra)))
        assert principal.roles == frozenset() and principal.tenant is None
    for tenant in [["LX", "ZRH"], {"id": "LX"}, 42, "LX ZRH", "x" * 65]:
        token = provider.token(provider.claims(tenant=tenant))
        assert "tenant" in rejected(verifier, token)


def _claims(provider: IdentityProvider, **changes: Any) -> dict[str, Any]:
    return provider.claims(**changes)


def test_invalid_tokens_are_refused_with_a_reason(provider: IdentityProvider) -> None:
    verifier = verifier_for(provider)
    now = int(time.time())
    good = provider.claims()
    cases = {
        "expired": provider.token(_claims(provider, exp=now - 120)),
        "not valid yet": provider.token(_claims(provider, nbf=now + 120)),
        "not valid yet (nbf or iat": provider.token(_claims(provider, iat=now + 120)),
        "another issuer": provider.token(_claims(provider, iss="https://evil.example/realms/x")),
        "another audience": provider.token(_claims(provider, audience="someone-else")),
        "no exp claim": provider.token({k: v for k, v in good.items() if k != "exp"}),
        "no sub claim": provider.token({k: v for k, v in good.items() if k != "sub"}),
        "sub claim is not": provider.token(_claims(provider, sub=12345)),
        "not signed by one of the issuer's keys": provider.token(good, kid="no-such-key"),
        "signature does not verify": provider.token(good, key=new_rsa()),
        "does not fit its signing key": provider.token(good, kid="ec-1", key=new_rsa()),
    }
    for reason, token in cases.items():
        assert reason in rejected(verifier, token), reason


def test_tampered_and_forged_tokens_are_refused(provider: IdentityProvider) -> None:
    verifier = verifier_for(provider)
    claims = provider.claims(realm_access={"roles": ["ops-team"]})
    header, _, signature = provider.token(claims).split(".")
    escalated = {**claims, "realm_access": {"roles": ["airline-admin"]}}
    forged_body = base64.urlsafe_b64encode(json.dumps(escalated).encode()).rstrip(b"=").decode()
    assert "signature does not verify" in rejected(verifier, f"{header}.{forged_body}.{signature}")
    # alg "none", with and without a signature
    none = unsigned({"alg": "none", "kid": "rsa-1"}, escalated)
    assert "algorithm is not accepted" in rejected(verifier, none)
    assert "algorithm is not accepted" in rejected(verifier, none + "AAAA")
    # HS256 keyed with the issuer's public key (algorithm confusion)
    for secret in [provider.public_pem(), json.dumps(provider.jwks()["keys"][0]).encode()]:
        confused = hmac_signed({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}, escalated, secret)
        assert "algorithm is not accepted" in rejected(verifier, confused)
    # an algorithm the issuer's key was not made for, even one the settings accept
    relabelled = unsigned({"alg": "RS256", "kid": "ec-1"}, claims, b"x" * 256)
    assert "does not fit" in rejected(verifier, relabelled)


def test_garbage_and_huge_tokens_are_refused(provider: IdentityProvider) -> None:
    verifier = verifier_for(provider)
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"rsa-1"}').decode().rstrip("=")
    garbage = [
        "",
        "abc",
        "a.b.c",
        "...",
        "é.é.é",
        "Bearer x.y.z",
        "a.b.c.d.e",  # an encrypted token (JWE)
        base64.urlsafe_b64encode(b"[1,2]").decode() + ".e30.",
        f"{header}.!!!.sig",
        f"{header}.e30.",
        unsigned({"alg": "RS256", "kid": 42}, {}),
        unsigned({"alg": "RS256", "kid": "k" * 300}, {}),
        unsigned({"alg": ["RS256"]}, {}),
        provider.token(provider.claims())[:-20],
    ]
    for token in garbage:
        rejected(verifier, token)
    huge = provider.token(provider.claims(padding="x" * 40_000))
    assert "longer than" in rejected(verifier, huge)
    assert "longer than" in rejected(verifier, "a." * 100_000 + "b")


def test_new_key_is_fetched_on_first_sight_but_at_most_once_per_interval() -> None:
    clock = Clock()
    with IdentityProvider().serve() as provider:
        verifier = verifier_for(provider, clock, min_refresh_seconds=30.0)
        verifier.verify(provider.token())
        assert provider.requests["jwks"] == 1
        provider.keys["rsa-2"] = new_rsa()
        provider.published.append("rsa-2")
        rotated = provider.token(kid="rsa-2")
        # within the interval a kid nobody has seen fetches nothing: no fetch storms
        for n in range(50):
            rejected(verifier, provider.token(kid=f"made-up-{n}"))
        rejected(verifier, rotated)
        assert provider.requests["jwks"] == 1
        clock.now += 31
        assert verifier.verify(rotated).kind == "oidc"
        assert verifier.verify(provider.token(kid="rsa-1")).kind == "oidc"
        assert provider.requests["jwks"] == 2


def test_retired_key_stops_working_when_the_key_set_is_refetched() -> None:
    clock = Clock()
    with IdentityProvider().serve() as provider:
        verifier = verifier_for(provider, clock, max_key_age_seconds=600.0)
        old = provider.token(kid="rsa-1")
        verifier.verify(old)
        provider.published.remove("rsa-1")
        clock.now += 599
        assert verifier.verify(old).kind == "oidc"  # the cached set is young enough
        clock.now += 2
        assert "not signed by one of the issuer's keys" in rejected(verifier, old)
        assert provider.requests["jwks"] == 2


def test_provider_down_refuses_tokens_and_keeps_known_keys() -> None:
    port = free_port()
    dead = OidcVerifier(
        OidcSettings(issuer=f"http://127.0.0.1:{port}/realms/x", audience="jetbridge")
    )
    provider = IdentityProvider()
    assert "cannot be fetched" in rejected(dead, provider.token())
    clock = Clock()
    with provider.serve():
        verifier = verifier_for(provider, clock)
        verifier.verify(provider.token())
    # the provider is gone: keys already fetched still verify, new ones cannot be fetched
    clock.now += 60
    assert verifier.verify(provider.token()).kind == "oidc"
    provider.keys["rsa-2"] = new_rsa()
    assert "not signed by one of the issuer's keys" in rejected(
        verifier, provider.token(kid="rsa-2")
    )


def test_unresponsive_provider_is_given_up_after_the_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts connections and never answers
        port = silent.getsockname()[1]
        verifier = OidcVerifier(
            OidcSettings(
                issuer="http://idp.invalid",
                audience="jetbridge",
                jwks_url=f"http://127.0.0.1:{port}/certs",
                fetch_timeout_seconds=0.5,
            )
        )
        started = time.monotonic()
        assert "cannot be fetched" in rejected(verifier, IdentityProvider().token())
        assert time.monotonic() - started < 5


def test_discovery_naming_another_issuer_is_not_trusted() -> None:
    with IdentityProvider().serve() as provider:
        provider.discovery_issuer = "https://evil.example"
        verifier = verifier_for(provider)
        assert "cannot be fetched" in rejected(verifier, provider.token())
        assert provider.requests["jwks"] == 0


def test_async_verification_fetches_keys_off_the_event_loop(provider: IdentityProvider) -> None:
    verifier = verifier_for(provider)
    claims = provider.claims(realm_access={"roles": ["airline-admin"]})

    async def both() -> list[Any]:
        return [await verifier.averify(provider.token(claims)) for _ in range(2)]

    principals = aio.run(both())
    assert all(p.roles == frozenset({"admin"}) and p.is_operator for p in principals)


def test_settings_build_the_verifier(provider: IdentityProvider) -> None:
    assert oidc_verifier(Settings()) is None
    settings = Settings(
        oidc_issuer=provider.issuer,
        oidc_audience="jetbridge",
        oidc_roles_claim="realm_access.roles",
        oidc_role_map="ops-team=operations, airline-admin=admin",
        oidc_tenant_claim="tenant",
    )
    verifier = oidc_verifier(settings)
    assert verifier is not None
    token = provider.token(provider.claims(realm_access={"roles": ["ops-team"]}, tenant="LX"))
    principal = verifier.verify(token)
    assert principal.roles == frozenset({"operations"}) and principal.tenant == "LX"
    explicit = Settings(
        oidc_issuer="https://idp.invalid", oidc_audience="a", oidc_jwks_url=provider.jwks_url
    )
    assert oidc_verifier(explicit) is not None


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"oidc_issuer": "https://idp.example"}, "JETBRIDGE_OIDC_AUDIENCE"),
        ({"oidc_role_map": "ops-team=root"}, "JETBRIDGE_OIDC_ROLE_MAP"),
        ({"oidc_role_map": "ops-team"}, "JETBRIDGE_OIDC_ROLE_MAP"),
        ({"oidc_algorithms": "RS256,HS256"}, "JETBRIDGE_OIDC_ALGORITHMS"),
        ({"oidc_algorithms": "none"}, "JETBRIDGE_OIDC_ALGORITHMS"),
        ({"oidc_algorithms": ""}, "JETBRIDGE_OIDC_ALGORITHMS"),
    ],
)
def test_bad_oidc_settings_are_refused_at_start(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**settings)
    assert named in str(caught.value)
