"""A small live page: the events flowing through a bus, streamed over server-sent events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from functools import partial
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse

from jetbridge.api.deps import BackboneDep
from jetbridge.api.policy import Operations, Public
from jetbridge.api.tenancy import own_bus
from jetbridge.bounds import MAX_ID
from jetbridge.errors import InvalidRequest
from jetbridge.events.envelope import InvalidEvent, cloud_event_from_dict, eventbridge_view
from jetbridge.events.patterns import CompiledPattern, InvalidEventPattern, parse_pattern
from jetbridge.web.broadcast import LogBroadcaster
from jetbridge.web.sse import ClientWriter, EventStreamResponse
from jetbridge.web.sse import last_event_id as parse_last_event_id

router = APIRouter(tags=["live"])


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def live_page(_: Public) -> str:
    """The page itself holds nothing; its stream needs the operations role."""
    return resources.files("jetbridge.web").joinpath("static/live.html").read_text()


@router.get("/api/buses/{bus}/stream")
async def stream_events(
    bus: str,
    request: Request,
    backbone: BackboneDep,
    caller: Operations,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    last_event_id: Annotated[str | None, Header()] = None,
    pattern: Annotated[str | None, Query(max_length=4096)] = None,
) -> EventStreamResponse:
    """SSE of the bus's event log; reconnecting with Last-Event-ID resumes after that event.
    With `pattern` (an event pattern, JSON) only the events it matches are sent."""
    render, view = _render, "live"
    if pattern is not None:
        try:
            compiled = parse_pattern(pattern)
        except InvalidEventPattern as exc:
            raise InvalidRequest(f"pattern: {exc}") from None
        publisher = backbone.publisher
        render = partial(_render_matching, compiled, publisher.account, publisher.region)
        view = f"live:{compiled.source}"
    with backbone.reading() as conn:
        own_bus(conn, caller, bus)
    start = parse_last_event_id(last_event_id)
    start = after if start is None else start
    broadcaster: LogBroadcaster = request.app.state.platform.broadcaster(bus)
    latest = await asyncio.to_thread(broadcaster.latest)
    if start is None or start > latest:  # a position from another log: the latest events
        start = max(latest - 20, 0)
    return EventStreamResponse(partial(_tail, broadcaster, start, view, render))


async def _tail(
    broadcaster: LogBroadcaster,
    after: int,
    view: str,
    render: Callable[[list[tuple[int, dict[str, Any]]]], bytes],
    writer: ClientWriter,
) -> None:
    """Every event after `after`, live, from the process's one reader of the bus's log."""
    await writer.write(b"retry: 1000\n\n")
    await broadcaster.serve(after, writer=writer, view=view, render=render)


def _render_matching(
    pattern: CompiledPattern, account: str, region: str, batch: list[tuple[int, dict[str, Any]]]
) -> bytes:
    """The batch's events that `pattern` matches, as rules see them (EventBridge shape)."""
    kept = []
    for seq, event in batch:
        try:
            parsed = cloud_event_from_dict(event, max_bytes=1 << 62, limits=None)
        except InvalidEvent:
            continue  # an unreadable stored event matches nothing
        if pattern.matches(eventbridge_view(parsed, account=account, region=region)):
            kept.append((seq, event))
    return _render(kept)


def _render(batch: list[tuple[int, dict[str, Any]]]) -> bytes:
    return "".join(
        f"id: {seq}\nevent: event\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"
        for seq, event in batch
    ).encode()
