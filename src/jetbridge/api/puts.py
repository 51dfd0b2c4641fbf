"""The event intake's route, `POST /api/buses/{bus}/events`, the busiest of the API.

A put that is well formed as it stands (a JSON object of `entries` alone, a list, sent as
`application/json`) takes a short way: the same caller check (the route's own dependency, so
the same policy, quota, audit and refusals), the same validation of each entry and the same
group commit, without FastAPI's generic body model, dependency solving and answer serialisation,
which cost more than the rest of the put together. Anything else (no or another content type,
malformed JSON, missing or extra fields) goes the general way, which words its refusal as every
route does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import Scope

from jetbridge.api.limits import PARSED_BODY
from jetbridge.api.policy import FEEDS_ON_LOOP
from jetbridge.events.backbone import Backbone
from jetbridge.ops.identity.principal import Principal

# Puts up to this size are validated on the event loop; larger ones in a thread, off it.
PARSE_IN_LOOP = 16 * 1024

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


async def publish(
    *, backbone: Backbone, bus: str, entries: Sequence[Any], caller: Principal, size: int
) -> dict[str, Any]:
    """Validate `entries` (on the event loop when the body was small), publish them on `bus`
    with the puts arriving meanwhile (group commit) and shape the answer."""
    if size <= PARSE_IN_LOOP:
        events = backbone.parse_entries(entries)
    else:
        events = await asyncio.to_thread(backbone.parse_entries, entries)
    published = await backbone.intake.put(bus=bus, events=events, may_act_for=caller.may_act_for)
    return {
        "entries": [
            {
                "event_id": p.event_id,
                "seq": p.seq,
                "duplicate": p.seq is None,
                "deliveries": p.deliveries,
            }
            for p in published
        ]
    }


class PutEventsRoute(APIRoute):
    """The put route: a well-formed put goes the short way, anything else the general one."""

    def get_route_handler(self) -> Handler:
        general = super().get_route_handler()

        async def handler(request: Request) -> Response:
            if not _declares_json(request):
                return await general(request)
            try:
                body = await request.body()
            except Exception:  # the client went away: the general way answers as it does
                return await general(request)
            entries = _plain_entries(request.scope, body)
            if entries is None or request.app.dependency_overrides:
                return await general(request)
            caller = await FEEDS_ON_LOOP(request)  # the route's own `FeedsOnLoop` dependency
            answer = await publish(
                backbone=request.app.state.platform.backbone,
                bus=request.path_params["bus"],
                entries=entries,
                caller=caller,
                size=len(body),
            )
            return JSONResponse(answer)

        return handler


def _declares_json(request: Request) -> bool:
    for name, value in request.scope["headers"]:
        if name == b"content-type":
            return bool(value == b"application/json")
    return False


def _plain_entries(scope: Scope, body: bytes) -> list[Any] | None:
    """The entries of a body the general way would accept as it is, else None."""
    parsed = scope.get(PARSED_BODY)
    if parsed is not None and parsed[0] == body:  # parsed by JsonBodyLimits already
        payload = parsed[1]
    else:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return None
    if type(payload) is not dict or len(payload) != 1:
        return None
    entries = payload.get("entries")
    return entries if type(entries) is list else None
