"""Every route declares who may call it: a `Require(policy)` dependency, found by a test that
walks the routing table, so a route without a policy cannot ship.

The policy checks roles; what a caller may see within a role (their tenant's resources, their
own bookings) is checked by the route against the resource's owner."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from jetbridge.errors import Forbidden, Unauthenticated
from jetbridge.ops.identity.authenticator import (
    CSRF_HEADER,
    SESSION_COOKIE,
    Authenticated,
    Authenticator,
)
from jetbridge.ops.identity.principal import Principal

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
STAFF = frozenset({"agent", "operations", "admin"})


@dataclass(frozen=True, slots=True)
class Policy:
    """Who may call a route. `roles` None: anyone, signed in or not."""

    name: str
    roles: frozenset[str] | None
    summary: str
    # Only the platform's operator (admin of no tenant).
    operator_only: bool = False
    # Public only while the `public_boards` setting is on; otherwise any signed-in caller.
    boards: bool = False
    # An HTML form route that checks the CSRF token in its form fields itself.
    form_csrf: bool = False
    # Only the platform's own staff (no tenant): what it shows spans every tenant.
    platform_only: bool = False


PUBLIC = Policy("public", None, "anyone, signed in or not")
PUBLIC_FORM = Policy("public", None, "anyone; the form carries its CSRF token", form_csrf=True)
BOARDS = Policy(
    "boards",
    None,
    "anyone while JETBRIDGE_PUBLIC_BOARDS is on (default), else signed in",
    boards=True,
)
SIGNED_IN = Policy(
    "signed-in",
    frozenset({"passenger", "agent", "operations", "admin", "service"}),
    "any signed-in user or key",
)
PASSENGER = Policy(
    "passenger", frozenset({"passenger", "agent", "admin"}), "passengers (own data) and staff"
)
AGENT = Policy("agent", frozenset({"agent", "operations", "admin"}), "airline or airport staff")
OPERATIONS = Policy("operations", frozenset({"operations", "admin"}), "operations and admins")
FEEDS = Policy(
    "feeds", frozenset({"service", "operations", "admin"}), "feed connectors and operations"
)
ADMIN = Policy("admin", frozenset({"admin"}), "administrators (of their tenant)")
OPERATOR = Policy("operator", frozenset({"admin"}), "the platform's operator", operator_only=True)
PLATFORM_OPERATIONS = Policy(
    "platform-operations",
    frozenset({"operations", "admin"}),
    "the platform's operations staff and operator (no tenant)",
    platform_only=True,
)

POLICIES = (
    PUBLIC,
    BOARDS,
    SIGNED_IN,
    PASSENGER,
    AGENT,
    OPERATIONS,
    FEEDS,
    ADMIN,
    OPERATOR,
    PLATFORM_OPERATIONS,
)


def authenticate(request: HTTPConnection) -> Authenticated:
    """The request's credentials, checked once per request."""
    cached: Authenticated | None = getattr(request.state, "authenticated", None)
    if cached is not None:
        return cached
    authenticator: Authenticator = request.app.state.platform.auth
    result = authenticator.authenticate(
        authorization=request.headers.get("authorization"),
        api_key=request.headers.get("x-api-key"),
        session=request.cookies.get(SESSION_COOKIE),
    )
    request.state.authenticated = result
    return result


class Require:
    """The dependency a route declares; it answers the caller's Principal once allowed."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def __call__(self, request: HTTPConnection) -> Principal:
        policy = self.policy
        request.state.policy = policy
        result = authenticate(request)
        principal = result.principal
        if result.csrf is not None:
            if request.scope["type"] == "websocket":
                _check_origin(request)
            elif request.scope["method"] not in SAFE_METHODS and not policy.form_csrf:
                _check_csrf(request, result.csrf)
        roles = policy.roles
        if policy.boards and not request.app.state.platform.settings.public_boards:
            roles = SIGNED_IN.roles
        if roles is None:
            return principal
        if not principal.authenticated:
            raise Unauthenticated("sign in, or send a bearer token or an API key")
        if (
            not principal.has_any(roles)
            or (policy.operator_only and not principal.is_operator)
            or (policy.platform_only and principal.tenant is not None)
        ):
            raise Forbidden(f"this needs the {policy.name} policy: {policy.summary}")
        if request.scope["type"] == "http" and request.scope["method"] not in SAFE_METHODS:
            request.app.state.platform.quota.charge(principal)
        return principal


class RequireOnLoop(Require):
    """Require for the busiest async routes: a caller whose API key was checked moments ago is
    let in on the event loop, with no thread hop; a key due for its check again is checked once
    in a worker thread for all the requests presenting it meanwhile; any other caller is checked
    in a worker thread, as Require does. Authorisation and the tenant's quota are decided per
    request either way (in a thread when the quota is counted in Redis)."""

    async def __call__(self, request: HTTPConnection) -> Principal:  # type: ignore[override]
        platform = request.app.state.platform
        if getattr(request.state, "authenticated", None) is None:
            request.state.policy = self.policy  # as Require sets it, should the check fail
            authorization = request.headers.get("authorization")
            api_key = request.headers.get("x-api-key")
            known = platform.auth.recent(authorization=authorization, api_key=api_key)
            if known is None:
                known = await platform.auth.check_together(
                    authorization=authorization, api_key=api_key
                )
            if known is not None:
                request.state.authenticated = known
                if platform.quota.local:
                    return super().__call__(request)
        return await run_in_threadpool(super().__call__, request)


def _check_csrf(request: HTTPConnection, expected: str) -> None:
    presented = request.headers.get(CSRF_HEADER) or ""
    if not secrets.compare_digest(presented.encode(), expected.encode()):
        raise Forbidden(f"a signed-in page must send its {CSRF_HEADER} header with this request")


def _check_origin(request: HTTPConnection) -> None:
    """A browser's WebSocket carries the session cookie cross-site: only our own pages may."""
    origin = request.headers.get("origin")
    host = request.headers.get("host")
    if origin is not None and origin.split("://", 1)[-1] != host:
        raise Forbidden("a signed-in WebSocket must come from this site's pages")


def caller(policy: Policy) -> object:
    """`Annotated[Principal, caller(OPERATIONS)]`: the allowed caller, as a route parameter."""
    return Depends(Require(policy))


Public = Annotated[Principal, Depends(Require(PUBLIC))]
PublicForm = Annotated[Principal, Depends(Require(PUBLIC_FORM))]
Boards = Annotated[Principal, Depends(Require(BOARDS))]
SignedIn = Annotated[Principal, Depends(Require(SIGNED_IN))]
Passenger = Annotated[Principal, Depends(Require(PASSENGER))]
Agent = Annotated[Principal, Depends(Require(AGENT))]
Operations = Annotated[Principal, Depends(Require(OPERATIONS))]
Feeds = Annotated[Principal, Depends(Require(FEEDS))]
# Feeds for the event intake: no thread hop for a caller whose key was checked moments ago.
FEEDS_ON_LOOP = RequireOnLoop(FEEDS)
FeedsOnLoop = Annotated[Principal, Depends(FEEDS_ON_LOOP)]
Admin = Annotated[Principal, Depends(Require(ADMIN))]
Operator = Annotated[Principal, Depends(Require(OPERATOR))]
PlatformOperations = Annotated[Principal, Depends(Require(PLATFORM_OPERATIONS))]


def policy_of(dependant: object) -> Policy | None:
    """The policy a route declares (searched through its dependencies), for the routing test."""
    stack = [dependant]
    while stack:
        current = stack.pop()
        call = getattr(current, "call", None)
        if isinstance(call, Require):
            return call.policy
        stack.extend(getattr(current, "dependencies", []))
    return None


def iter_routes(routes: Iterable[Any], path_for: Any = None) -> Iterator[tuple[str, Any]]:
    """(full path, route) of every route, through included routers."""
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:  # FastAPI's included router
            context = route.include_context
            yield from iter_routes(original.routes, context.path_for)
            continue
        path = path_for(route) if path_for is not None else getattr(route, "path", "")
        yield str(path), route


def policy_table(app: Any) -> list[tuple[str, str, Policy | None]]:
    """(method, path, policy) of every HTTP and WebSocket route, for tests and documentation."""
    table: list[tuple[str, str, Policy | None]] = []
    for path, route in iter_routes(app.routes):
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            continue
        methods = sorted(getattr(route, "methods", None) or {"WEBSOCKET"})
        policy = policy_of(dependant)
        table.extend((method, path, policy) for method in methods if method != "HEAD")
    return table
