"""Records each management request on the audit bus once it is answered: allowed ones that
changed something, and refused ones (401/403) on management routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jetbridge.api.policy import SAFE_METHODS, Policy
from jetbridge.ops.identity import audit
from jetbridge.ops.identity.principal import ANONYMOUS

log = logging.getLogger(__name__)
AUDITED = frozenset({"agent", "operations", "admin", "operator"})


class AuditTrail:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        status = 0

        def observe(message: Message) -> Awaitable[None]:
            # A plain function handing back the server's own awaitable: no coroutine per chunk.
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            return send(message)

        await self.app(scope, receive, observe)
        state: dict[str, Any] = scope.get("state") or {}
        policy: Policy | None = state.get("policy")
        if policy is None or policy.name not in AUDITED:
            return
        if status >= 400 and status not in {401, 403}:
            return
        authenticated = state.get("authenticated")
        principal = authenticated.principal if authenticated is not None else ANONYMOUS
        client = scope.get("client")
        origin = client[0] if client else "unknown"
        platform = scope["app"].state.platform
        try:
            await asyncio.to_thread(
                audit.record,
                platform.backbone,
                principal,
                action=f"{scope['method']} {_route(scope)}",
                resource=scope["path"],
                origin=origin,
                outcome="allowed" if status < 400 else "denied",
            )
        except Exception:  # the answer is sent; a lost audit record is logged, never silent
            log.exception("audit record of %s %s was not written", scope["method"], scope["path"])


def _route(scope: Scope) -> str:
    route = scope.get("route")
    return str(getattr(route, "path", scope["path"]))
