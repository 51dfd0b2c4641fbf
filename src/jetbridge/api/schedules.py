"""Schedule import: one push makes each leg the hub's flight and the sellable flight."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from jetbridge.api.deps import BackboneDep, FeedLimitsDep
from jetbridge.api.policy import Feeds
from jetbridge.errors import InvalidRequest
from jetbridge.flights.feeds.errors import ParseError
from jetbridge.schedules import publish_schedule, read_schedule

router = APIRouter(tags=["schedules"])


@router.post("/api/schedules/{kind}")
async def import_schedule(
    kind: Annotated[str, Path(pattern=r"^(ssim|json)$")],
    request: Request,
    backbone: BackboneDep,
    _: Feeds,
    limits: FeedLimitsDep,
    currency: Annotated[str, Query(pattern=r"^[A-Z]{3}$")] = "EUR",
) -> dict[str, Any]:
    """Publish an SSIM chapter 7 file (or a JSON list of dated legs): every passenger leg
    becomes a hub flight and a sellable flight, all or none; a malformed file is a 400 naming
    its line and column. `currency` prices the legs of an SSIM file."""
    body = await request.body()
    try:
        entries = await asyncio.to_thread(
            read_schedule, kind, body, currency=currency, limits=limits
        )
    except ParseError as exc:
        raise InvalidRequest(str(exc)) from None
    published = await asyncio.to_thread(publish_schedule, backbone, entries)
    return published.to_json()
