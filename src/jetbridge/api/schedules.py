"""Schedule import: one push makes each leg the hub's flight and the sellable flight."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from jetbridge.api.deps import BackboneDep, FeedLimitsDep
from jetbridge.api.policy import Feeds
from jetbridge.booking.catalog import ScheduleEntry
from jetbridge.errors import Forbidden, InvalidRequest
from jetbridge.events.backbone import Backbone
from jetbridge.flights.feeds.errors import ParseError
from jetbridge.ops.identity import store
from jetbridge.ops.identity.principal import Principal
from jetbridge.schedules import publish_schedule, read_schedule

router = APIRouter(tags=["schedules"])


@router.post("/api/schedules/{kind}")
async def import_schedule(
    kind: Annotated[str, Path(pattern=r"^(ssim|asm|json)$")],
    request: Request,
    backbone: BackboneDep,
    caller: Feeds,
    limits: FeedLimitsDep,
    currency: Annotated[str, Query(pattern=r"^[A-Z]{3}$")] = "EUR",
) -> dict[str, Any]:
    """Publish an SSIM chapter 7 file, ASM/SSM messages defining legs (NEW, RPL), or a JSON
    list of dated legs: every passenger leg becomes a hub flight and a sellable flight, all or
    none; a malformed file is a 400 naming its line (and column). `currency` prices the legs of
    SSIM and ASM files."""
    body = await request.body()
    try:
        entries = await asyncio.to_thread(
            read_schedule, kind, body, currency=currency, limits=limits
        )
    except ParseError as exc:
        raise InvalidRequest(str(exc)) from None
    await asyncio.to_thread(_check_operator, backbone, caller, entries)
    published = await asyncio.to_thread(publish_schedule, backbone, entries)
    return published.to_json()


def _check_operator(backbone: Backbone, caller: Principal, entries: list[ScheduleEntry]) -> None:
    """An airline publishes the legs it operates; an airport and the platform's operator any."""
    if caller.is_operator or caller.tenant is None:
        return
    with backbone.reading() as conn:
        tenant = store.get_tenant(conn, caller.tenant)
    if tenant is None or tenant.get("kind") != "airline":
        return
    for entry in entries:
        if entry.airline != caller.tenant:
            raise Forbidden(
                f"{entry.identity.key}: operated by {entry.airline}; airline {caller.tenant} "
                "publishes only the legs it operates (codeshares name its own numbers)"
            )
