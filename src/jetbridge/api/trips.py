"""Live status of the flights on a passenger's trips, over SSE, from the one reader of the bus."""

from __future__ import annotations

import asyncio
import json
import re
from collections import OrderedDict
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request

from jetbridge.api.deps import BackboneDep
from jetbridge.api.policy import Boards
from jetbridge.errors import InvalidRequest
from jetbridge.events.backbone import Backbone
from jetbridge.flights.hub import BUS, get_flight, is_flight_update
from jetbridge.flights.passenger_view import trip_flight
from jetbridge.web.broadcast import LogBroadcaster
from jetbridge.web.sse import ClientWriter, EventStreamResponse
from jetbridge.web.sse import last_event_id as parse_last_event_id

router = APIRouter(tags=["trips"])
FlightKeys = Annotated[
    list[str],
    Query(
        alias="flight",
        min_length=1,
        max_length=20,
        description="flight keys, e.g. LX0318-2026-12-01-ZRH-LHR (up to 20)",
    ),
]
_KEY = r"^[A-Z0-9]{2,3}\d{4}[A-Z]?-\d{4}-\d{2}-\d{2}-[A-Z]{3}-[A-Z]{3}(-R\d{1,2})?$"


@router.get("/api/trips/stream")
async def trips_stream(
    request: Request,
    backbone: BackboneDep,
    _: Boards,
    flights: FlightKeys,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventStreamResponse:
    """SSE: the flights' trip status now (`snapshot`), then each change (`flight`) as the hub
    publishes it; reconnecting with Last-Event-ID misses nothing. Flight data only."""
    for key in flights:
        if not re.fullmatch(_KEY, key):
            raise InvalidRequest(
                f"flight: {key[:80]!r} is not a flight key like LX0318-2026-12-01-ZRH-LHR"
            )
    keys = tuple(sorted(set(flights)))
    resume = parse_last_event_id(last_event_id)
    broadcaster: LogBroadcaster = request.app.state.platform.broadcaster(BUS)
    return EventStreamResponse(partial(_stream, backbone, broadcaster, keys, resume))


async def _stream(
    backbone: Backbone,
    broadcaster: LogBroadcaster,
    keys: tuple[str, ...],
    resume: int | None,
    writer: ClientWriter,
) -> None:
    await writer.write(b"retry: 1000\n\n")
    view = "trips:" + ",".join(keys)
    latest = await asyncio.to_thread(broadcaster.latest)
    if resume is None or resume > latest:
        resume = latest
        load = partial(_snapshot, backbone, keys, resume)
        await writer.write(await broadcaster.shared((resume, view), load))
    render = partial(_frames, broadcaster.frames, frozenset(keys), view)
    await broadcaster.serve(resume, writer=writer, view=view, render=render)


async def _snapshot(backbone: Backbone, keys: tuple[str, ...], position: int) -> bytes:
    def read() -> list[dict[str, Any]]:
        with backbone.reading() as conn:
            views = [get_flight(conn, key) for key in keys]
        return [trip_flight(v) for v in views if v is not None]

    flights = await asyncio.to_thread(read)
    return f"id: {position}\nevent: snapshot\ndata: {json.dumps(flights)}\n\n".encode()


def _frames(
    cache: OrderedDict[Any, bytes],
    keys: frozenset[str],
    view: str,
    batch: list[tuple[int, dict[str, Any]]],
) -> bytes:
    """Each event rendered once per set of flights, shared by every client following that set."""
    out = []
    for seq, event in batch:
        frame = cache.get((seq, view))
        if frame is None:
            frame = _frame(seq, event, keys)
            cache[(seq, view)] = frame
            if len(cache) > 8192:
                cache.popitem(last=False)
        out.append(frame)
    return b"".join(out)


def _frame(seq: int, event: dict[str, Any], keys: frozenset[str]) -> bytes:
    if is_flight_update(event):
        flight = event["data"]["flight"]
        if flight.get("flight_key") in keys:
            body = json.dumps(trip_flight(flight))
            return f"id: {seq}\nevent: flight\ndata: {body}\n\n".encode()
    # now and then an id alone, so a reconnect does not re-read others' events
    return f"id: {seq}\n\n".encode() if seq % 50 == 0 else b""
