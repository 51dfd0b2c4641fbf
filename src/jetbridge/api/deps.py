"""Typed dependencies for routes: the platform's services, taken from the application state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from jetbridge.booking.facade import Bookings
from jetbridge.errors import InvalidRequest, NotFound
from jetbridge.events.backbone import Backbone
from jetbridge.flights.feeds.limits import FeedLimits
from jetbridge.ops.outbound import InvalidURL, OutboundPolicy, OutboundRefused


async def get_backbone(request: Request) -> Backbone:
    """Async, as every dependency that does no blocking work: no thread hop to answer it."""
    backbone: Backbone = request.app.state.platform.backbone
    return backbone


BackboneDep = Annotated[Backbone, Depends(get_backbone)]


def get_bookings(request: Request) -> Bookings:
    bookings: Bookings | None = getattr(request.app.state.platform, "bookings", None)
    if bookings is None:
        raise NotFound("booking is not enabled on this platform")
    return bookings


BookingsDep = Annotated[Bookings, Depends(get_bookings)]


def get_outbound(request: Request) -> OutboundPolicy:
    outbound: OutboundPolicy = request.app.state.platform.outbound
    return outbound


OutboundDep = Annotated[OutboundPolicy, Depends(get_outbound)]


def check_outbound_url(policy: OutboundPolicy, url: str, *, where: str) -> None:
    """400 naming `where` when a caller's URL is malformed or names an internal address that the
    allow-list does not admit (host names resolving to one are refused when connecting)."""
    try:
        policy.check_url(url)
    except (InvalidURL, OutboundRefused) as exc:
        raise InvalidRequest(f"{where}: {exc}") from None


def get_feed_limits(request: Request) -> FeedLimits:
    limits: FeedLimits = request.app.state.platform.settings.feed_limits()
    return limits


FeedLimitsDep = Annotated[FeedLimits, Depends(get_feed_limits)]
