"""Typed dependencies for routes: the platform's services, taken from the application state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from jetbridge.booking.facade import Bookings
from jetbridge.errors import NotFound
from jetbridge.events.backbone import Backbone
from jetbridge.flights.feeds.limits import FeedLimits


def get_backbone(request: Request) -> Backbone:
    backbone: Backbone = request.app.state.platform.backbone
    return backbone


BackboneDep = Annotated[Backbone, Depends(get_backbone)]


def get_bookings(request: Request) -> Bookings:
    bookings: Bookings | None = getattr(request.app.state.platform, "bookings", None)
    if bookings is None:
        raise NotFound("booking is not enabled on this platform")
    return bookings


BookingsDep = Annotated[Bookings, Depends(get_bookings)]


def get_feed_limits(request: Request) -> FeedLimits:
    limits: FeedLimits = request.app.state.platform.settings.feed_limits()
    return limits


FeedLimitsDep = Annotated[FeedLimits, Depends(get_feed_limits)]
