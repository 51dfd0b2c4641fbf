"""Sign-in and identities over HTTP: OAuth2 tokens (password and refresh-token grants),
passenger sign-up, and the administration of tenants, users, API keys and the audit trail."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from jetbridge.api.deps import BackboneDep
from jetbridge.api.policy import Admin, Operator, Public, SignedIn, authenticate
from jetbridge.errors import Forbidden, InvalidRequest, NotFound, Unauthenticated
from jetbridge.ops.identity import audit, store, tokens
from jetbridge.ops.identity.authenticator import Authenticator
from jetbridge.ops.identity.principal import Principal

router = APIRouter(prefix="/api", tags=["identity"])
Secret = Annotated[str, Form(max_length=1024)]


def _auth(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.platform.auth
    return authenticator


@router.post("/auth/token")
def token(
    request: Request,
    _: Public,
    grant_type: Annotated[Literal["password", "refresh_token"], Form()],
    username: Annotated[str | None, Form(max_length=128)] = None,
    password: Annotated[str | None, Form(max_length=1024)] = None,
    refresh_token: Annotated[str | None, Form(max_length=256)] = None,
) -> dict[str, Any]:
    """OAuth2 token endpoint (RFC 6749 form): a short-lived access token and a refresh token."""
    authenticator = _auth(request)
    try:
        return _grant(authenticator, grant_type, username, password, refresh_token)
    except tokens.RefreshTokenReplayed as replayed:
        with authenticator.engine.begin() as conn:
            tokens.revoke_family(conn, family=replayed.family)
        raise


def _grant(
    authenticator: Authenticator,
    grant_type: str,
    username: str | None,
    password: str | None,
    refresh_token: str | None,
) -> dict[str, Any]:
    with authenticator.engine.begin() as conn:
        if grant_type == "password":
            if not username or password is None:
                raise InvalidRequest("username and password are required for grant_type=password")
            user = store.check_password(conn, username=username, password=password)
            if user is None:
                raise Unauthenticated("unknown user or wrong password")
            refresh = tokens.issue_refresh_token(
                conn, authenticator.tokens, user_id=user["user_id"]
            )
        else:
            if not refresh_token:
                raise InvalidRequest("refresh_token is required for grant_type=refresh_token")
            user_id, refresh = tokens.rotate_refresh_token(
                conn, authenticator.tokens, token=refresh_token
            )
            user = store.get_user(conn, user_id)
            if user is None or user["disabled"]:
                raise Unauthenticated("the account is disabled")
    access, lifetime = tokens.issue_access_token(authenticator.tokens, store.user_principal(user))
    return {
        "access_token": access,
        "token_type": "bearer",
        "expires_in": lifetime,
        "refresh_token": refresh,
    }


@router.post("/auth/revoke", status_code=204)
def revoke(request: Request, _: Public, token: Secret) -> None:
    """Sign out an API client (RFC 7009): the refresh token and its family end."""
    with _auth(request).engine.begin() as conn:
        tokens.revoke_refresh_token(conn, token=token)


class SignUp(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    username: Annotated[str, Field(min_length=3, max_length=128)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


@router.post("/auth/register", status_code=201)
def register(body: SignUp, request: Request, _: Public) -> dict[str, Any]:
    """A passenger account (no other role can be had by signing up)."""
    with _auth(request).engine.begin() as conn:
        return store.create_user(
            conn,
            username=body.username,
            password=body.password,
            roles=frozenset({"passenger"}),
            tenant=None,
        )


@router.get("/auth/me")
def me(request: Request, caller: SignedIn) -> dict[str, Any]:
    """Who the caller is; a page session also learns the CSRF token its requests must send."""
    result = authenticate(request)
    return {
        "subject": caller.subject,
        "kind": caller.kind,
        "name": caller.display,
        "roles": sorted(caller.roles),
        "tenant": caller.tenant,
        "csrf_token": result.csrf,
    }


# Tenants ----------------------------------------------------------------------------------------


class NewTenant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant_id: Annotated[str, Field(pattern=r"^[A-Z0-9]{2,8}$")]
    kind: Literal["airline", "airport"]
    name: Annotated[str, Field(min_length=1, max_length=128)]


@router.get("/tenants")
def list_tenants(request: Request, _: Operator) -> list[dict[str, Any]]:
    with _auth(request).engine.connect() as conn:
        return store.list_tenants(conn)


@router.post("/tenants", status_code=201)
def create_tenant(body: NewTenant, request: Request, _: Operator) -> dict[str, Any]:
    """An airline or airport, with its own event bus."""
    with _auth(request).engine.begin() as conn:
        return store.create_tenant(conn, tenant_id=body.tenant_id, kind=body.kind, name=body.name)


# Users and API keys -----------------------------------------------------------------------------

RoleName = Literal["passenger", "agent", "operations", "admin", "service"]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    username: Annotated[str, Field(min_length=3, max_length=128)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]
    roles: Annotated[list[RoleName], Field(min_length=1, max_length=5)]
    tenant: Annotated[str | None, Field(pattern=r"^[A-Z0-9]{2,8}$")] = None


class NewApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=128)]
    roles: Annotated[list[RoleName], Field(min_length=1, max_length=5)]
    tenant: Annotated[str | None, Field(pattern=r"^[A-Z0-9]{2,8}$")] = None
    expires_in_days: Annotated[int | None, Field(ge=1, le=3650)] = None


def _grantable(caller: Principal, roles: frozenset[str], tenant: str | None) -> str | None:
    """The tenant a new identity gets; an admin grants only within their own tenant."""
    if caller.is_operator:
        return tenant
    if tenant not in (None, caller.tenant):
        raise Forbidden("tenant: an administrator creates identities of their own tenant only")
    if "passenger" in roles:
        raise Forbidden("roles: passenger accounts are made by signing up")
    return caller.tenant


@router.get("/users")
def list_users(request: Request, caller: Admin) -> list[dict[str, Any]]:
    with _auth(request).engine.connect() as conn:
        return store.list_users(conn, tenant=caller.tenant, all_tenants=caller.is_operator)


@router.post("/users", status_code=201)
def create_user(body: NewUser, request: Request, caller: Admin) -> dict[str, Any]:
    roles = frozenset(body.roles)
    tenant = _grantable(caller, roles, body.tenant)
    with _auth(request).engine.begin() as conn:
        return store.create_user(
            conn, username=body.username, password=body.password, roles=roles, tenant=tenant
        )


@router.post("/users/{username}/{action}")
def set_user_state(
    username: Annotated[str, Path(max_length=128)],
    action: Literal["disable", "enable"],
    request: Request,
    caller: Admin,
) -> dict[str, Any]:
    """Disable (every session and token of the user ends at once) or enable a user."""
    with _auth(request).engine.begin() as conn:
        user = store.find_user(conn, username)
        if user is None or not caller.may_act_for(user["tenant"]):
            raise NotFound(f"user {username!r} does not exist")
        if user["user_id"] == caller.subject.removeprefix("user:") and action == "disable":
            raise Forbidden("an administrator cannot disable their own account")
        return store.set_user_disabled(conn, username=username, disabled=action == "disable")


@router.get("/api-keys")
def list_api_keys(request: Request, caller: Admin) -> list[dict[str, Any]]:
    with _auth(request).engine.connect() as conn:
        return store.list_api_keys(conn, tenant=caller.tenant, all_tenants=caller.is_operator)


@router.post("/api-keys", status_code=201)
def create_api_key(body: NewApiKey, request: Request, caller: Admin) -> dict[str, Any]:
    """A key for a machine (AODB connector, partner, airline consumer); shown once."""
    import time

    roles = frozenset(body.roles)
    tenant = _grantable(caller, roles, body.tenant)
    expires = time.time() + body.expires_in_days * 86400 if body.expires_in_days else None
    with _auth(request).engine.begin() as conn:
        return store.create_api_key(
            conn,
            name=body.name,
            roles=roles,
            tenant=tenant,
            created_by=caller.subject,
            expires_at=expires,
        )


@router.post("/api-keys/{key_id}/revoke")
def revoke_api_key(
    key_id: Annotated[str, Path(max_length=32)], request: Request, caller: Admin
) -> dict[str, Any]:
    with _auth(request).engine.begin() as conn:
        found = store.get_api_key(conn, key_id)
        if found is None or not caller.may_act_for(found["tenant"]):
            raise NotFound(f"API key {key_id!r} does not exist")
        return store.revoke_api_key(conn, key_id=key_id)


@router.get("/audit")
def audit_trail(
    backbone: BackboneDep,
    caller: Admin,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Management actions, oldest first: the tenant's own, or every tenant's for the operator."""
    return audit.read(
        backbone, tenant=caller.tenant, all_tenants=caller.is_operator, after=after, limit=limit
    )
