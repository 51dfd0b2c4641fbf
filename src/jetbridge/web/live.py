"""A small live page: the events flowing through a bus, streamed over server-sent events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from jetbridge.api.deps import BackboneDep
from jetbridge.events.backbone import Backbone
from jetbridge.events.registry import get_bus

router = APIRouter(tags=["live"])


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def live_page() -> str:
    return resources.files("jetbridge.web").joinpath("static/live.html").read_text()


@router.get("/api/buses/{bus}/stream")
async def stream_events(
    bus: str,
    request: Request,
    backbone: BackboneDep,
    after: Annotated[int | None, Query(ge=0)] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """SSE of the bus's event log; reconnecting with Last-Event-ID resumes after that event."""
    with backbone.reading() as conn:
        get_bus(conn, name=bus)
    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else after
    if start is None:
        start = await asyncio.to_thread(_latest_seq, backbone, bus)
    return StreamingResponse(_tail(backbone, bus, start, request), media_type="text/event-stream")


def _latest_seq(backbone: Backbone, bus: str) -> int:
    """Where a new viewer starts: the last twenty events."""
    with backbone.reading() as conn:
        return max(backbone.log.latest_seq(conn, bus=bus) - 20, 0)


async def _tail(backbone: Backbone, bus: str, after: int, request: Request) -> AsyncIterator[str]:
    yield "retry: 1000\n\n"
    while not await request.is_disconnected():
        batch = await asyncio.to_thread(_read, backbone, bus, after)
        for seq, body in batch:
            after = seq
            yield f"id: {seq}\nevent: event\ndata: {body}\n\n"
        if not batch:
            yield ": keep-alive\n\n"
            await asyncio.sleep(0.25)


def _read(backbone: Backbone, bus: str, after: int) -> list[tuple[int, str]]:
    with backbone.reading() as conn:
        return [(e.seq, e.body) for e in backbone.log.read(conn, bus=bus, after=after, limit=200)]
