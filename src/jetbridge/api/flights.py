"""Flight information: passenger status, FIDS boards (JSON and live SSE), ingestion errors."""

from __future__ import annotations

import asyncio
import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import HTMLResponse

from jetbridge.api.deps import BackboneDep, FeedLimitsDep, OutboundDep, check_outbound_url
from jetbridge.api.policy import Boards, Feeds, Operations, Public, SignedIn
from jetbridge.bounds import FIRST_DAY, LAST_DAY, MAX_ID
from jetbridge.errors import InvalidRequest, NotFound
from jetbridge.events.backbone import Backbone
from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.fids import Linger, board_row, on_board, zone_for
from jetbridge.flights.hub import (
    BUS,
    FlightHub,
    find_flights,
    flights_at,
    get_flight,
    is_flight_update,
    list_errors,
    load_state,
)
from jetbridge.flights.ingest import ingest
from jetbridge.flights.model import flight_json_schema
from jetbridge.notify import subscriptions
from jetbridge.notify.subscriptions import SubscriptionRequest
from jetbridge.web.broadcast import LogBroadcaster
from jetbridge.web.sse import ClientWriter, EventStreamResponse
from jetbridge.web.sse import last_event_id as parse_last_event_id

router = APIRouter(tags=["flights"])
AirportCode = Annotated[str, Path(pattern=r"^[A-Z]{3}$")]
Direction = Annotated[str, Path(pattern=r"^(departures|arrivals)$")]
_FLIGHT = re.compile(r"^([A-Z0-9]{2}|[A-Z]{3}) ?(\d{1,4}[A-Z]?)$")


def _today() -> date:
    return datetime.now(UTC).date()


@router.get("/api/flights/schema")
def schema(_: Public) -> dict[str, Any]:
    """JSON Schema of the canonical flight leg as every channel shows it."""
    return flight_json_schema()


@router.get("/api/flights/status")
def flight_status(
    backbone: BackboneDep,
    _: Boards,
    flight: Annotated[str, Query(max_length=8, description="e.g. LX100")],
    day: Annotated[date | None, Query(alias="date", ge=FIRST_DAY, le=LAST_DAY)] = None,
) -> list[dict[str, Any]]:
    """Passenger flight status by flight number and date (all legs of that flight); a
    codeshare number finds the operating legs it is marketed on."""
    found = _FLIGHT.match(flight.strip().upper())
    if not found:
        raise InvalidRequest(f"flight: {flight!r} is not a flight number like LX100")
    airline, number = found.groups()
    digits = re.match(r"\d+", number)
    assert digits is not None
    padded = f"{int(digits.group(0)):04d}{number[digits.end() :]}"
    with backbone.reading() as conn:
        legs = find_flights(conn, airline=airline, number=padded, day=day or _today())
    if not legs:
        raise NotFound(f"no flight {flight} on {(day or _today()).isoformat()}")
    return legs


@router.get("/api/flights/{flight_key}")
def flight_by_key(flight_key: str, backbone: BackboneDep, _: Boards) -> dict[str, Any]:
    with backbone.reading() as conn:
        view = get_flight(conn, flight_key)
    if view is None:
        raise NotFound(f"flight {flight_key!r} does not exist")
    return view


@router.get("/api/flights/{flight_key}/provenance")
def flight_provenance(flight_key: str, backbone: BackboneDep, _: Operations) -> dict[str, Any]:
    """Where each field of a flight came from (source, the source's time, and its sequence: 1
    for a correction), and the raw values sources sent that no canonical field holds (an
    unknown code or element, a value that did not parse), by the path they had in the message.
    A field a later message withdrew (an MVT RR) is listed with `value` null."""
    with backbone.reading() as conn:
        state = load_state(conn, flight_key)
    if state is None:
        raise NotFound(f"flight {flight_key!r} does not exist")
    fields = {
        name: {
            "value": state.fields.get(name),
            "source": source,
            "source_time": when,
            "sequence": sequence,
        }
        for name, (source, when, sequence) in sorted(state.provenance.items())
    }
    unknown = [
        {"path": path, "source": source, "source_time": when, "raw": raw}
        for path, (source, when, raw) in sorted(state.unknown.items())
    ]
    return {
        "flight_key": state.identity.key,
        "version": state.version,
        "fields": fields,
        "unknown": unknown,
    }


def _board(
    backbone: Backbone,
    airport: str,
    direction: str,
    day: date,
    filters: dict[str, str | None],
    linger: Linger,
) -> list[dict[str, Any]]:
    """The rows a board shows now: flights that departed or arrived a while ago have left
    (a board of a past day shows all its flights: it is a record, not a screen)."""
    with backbone.reading() as conn:
        views = flights_at(conn, airport=airport, day=day, direction=direction)
    now = datetime.now(UTC)
    rows = [
        board_row(view, direction=direction, linger=linger)
        for view in views
        if _wanted(view, direction, filters)
    ]
    shown = [row for row in rows if day < now.date() or on_board(row, now)]
    return sorted(shown, key=lambda row: (row["scheduled_utc"] or "", row["flight"]))


def _linger(request: Request) -> Linger:
    settings = request.app.state.platform.settings
    return Linger(
        departed=timedelta(minutes=settings.board_departed_minutes),
        arrived=timedelta(minutes=settings.board_arrived_minutes),
    )


def _wanted(view: dict[str, Any], direction: str, filters: dict[str, str | None]) -> bool:
    terminal = view.get("terminal") if direction == "departures" else view.get("arrival_terminal")
    checks = {"terminal": terminal, "gate": view.get("gate"), "airline": view.get("airline")}
    return all(wanted is None or checks[name] == wanted for name, wanted in filters.items())


@router.get("/api/fids/{airport}/{direction}")
def board(
    airport: AirportCode,
    direction: Direction,
    request: Request,
    backbone: BackboneDep,
    _: Boards,
    day: Annotated[date | None, Query(alias="date", ge=FIRST_DAY, le=LAST_DAY)] = None,
    terminal: Annotated[str | None, Query(max_length=4)] = None,
    gate: Annotated[str | None, Query(max_length=6)] = None,
    airline: Annotated[str | None, Query(max_length=3)] = None,
) -> list[dict[str, Any]]:
    filters = {"terminal": terminal, "gate": gate, "airline": airline}
    return _board(backbone, airport, direction, day or _today(), filters, _linger(request))


@router.get("/api/fids/{airport}/{direction}/stream")
async def board_stream(
    airport: AirportCode,
    direction: Direction,
    request: Request,
    backbone: BackboneDep,
    _: Boards,
    day: Annotated[date | None, Query(alias="date", ge=FIRST_DAY, le=LAST_DAY)] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventStreamResponse:
    """SSE: a snapshot, then every change; reconnecting with Last-Event-ID misses nothing."""
    resume = parse_last_event_id(last_event_id)
    broadcaster: LogBroadcaster = request.app.state.platform.broadcaster(BUS)
    board = Board(airport, direction, day or _today(), _linger(request))
    return EventStreamResponse(partial(_board_stream, backbone, broadcaster, board, resume))


@dataclass(frozen=True, slots=True)
class Board:
    airport: str
    direction: str
    day: date
    linger: Linger

    @property
    def key(self) -> str:
        return f"{self.airport}/{self.direction}/{self.day.isoformat()}"


async def _board_stream(
    backbone: Backbone,
    broadcaster: LogBroadcaster,
    board: Board,
    resume: int | None,
    writer: ClientWriter,
) -> None:
    await writer.write(b"retry: 1000\n\n")
    latest = await asyncio.to_thread(broadcaster.latest)
    if resume is None or resume > latest:  # a position from another log: start afresh
        resume = latest
        load = partial(_snapshot, backbone, board, resume)
        await writer.write(await broadcaster.shared((resume, board.key), load))
    render = partial(_frames, broadcaster.frames, board, board.key)
    await broadcaster.serve(resume, writer=writer, view=board.key, render=render)


async def _snapshot(backbone: Backbone, board: Board, position: int) -> bytes:
    """The board as of `position`, rendered once for every client connecting meanwhile."""
    rows = await asyncio.to_thread(
        _board, backbone, board.airport, board.direction, board.day, {}, board.linger
    )
    return f"id: {position}\nevent: snapshot\ndata: {json.dumps(rows)}\n\n".encode()


def _frames(
    cache: OrderedDict[Any, bytes], board: Board, key: str, batch: list[tuple[int, Any]]
) -> bytes:
    """What one board shows of a batch of events, each frame rendered once for all clients."""
    if len(batch) == 1:
        return _frame(cache, *batch[0], board, key)
    return b"".join(_frame(cache, seq, event, board, key) for seq, event in batch)


def _frame(
    cache: OrderedDict[Any, bytes], seq: int, event: dict[str, Any], board: Board, key: str
) -> bytes:
    frame = cache.get((seq, key))
    if frame is None:
        row = _relevant(event, board)
        if row:
            frame = f"id: {seq}\nevent: flight\ndata: {json.dumps(row)}\n\n".encode()
        else:  # now and then an id alone, so a reconnect does not re-read others' events
            frame = f"id: {seq}\n\n".encode() if seq % 50 == 0 else b""
        cache[(seq, key)] = frame
        if len(cache) > 8192:
            cache.popitem(last=False)
    return frame


def _relevant(event: dict[str, Any], board: Board) -> dict[str, Any] | None:
    if not is_flight_update(event):
        return None
    view = event["data"]["flight"]
    side = "departure_airport" if board.direction == "departures" else "arrival_airport"
    if view.get(side) != board.airport or view.get("origin_date") != board.day.isoformat():
        return None
    return board_row(view, direction=board.direction, linger=board.linger)


@router.post("/api/subscriptions", status_code=201)
def subscribe(
    request: SubscriptionRequest,
    backbone: BackboneDep,
    caller: SignedIn,
    outbound: OutboundDep,
) -> dict[str, Any]:
    """Follow a flight by webhook (HMAC-signed with the returned secret) or email."""
    if request.channel == "webhook" and request.url is not None:
        check_outbound_url(outbound, request.url, where="body.url")
    with backbone.transaction() as conn:
        flight = get_flight(conn, request.flight_key)
        if flight is None:
            raise NotFound(f"flight {request.flight_key!r} does not exist")
        return subscriptions.subscribe(
            conn,
            request=request,
            current_version=flight["version"],
            owner=caller.subject,
            tenant=caller.tenant,
        )


@router.delete("/api/subscriptions/{subscription_id}", status_code=204)
def unsubscribe(subscription_id: str, backbone: BackboneDep, _: Public) -> None:
    """Cancel a subscription: its id is the unsubscribe token sent with every notice."""
    with backbone.transaction() as conn:
        subscriptions.unsubscribe(conn, subscription_id=subscription_id)


@router.get("/fids/{airport}", response_class=HTMLResponse, include_in_schema=False)
def fids_page(airport: AirportCode, _: Boards) -> str:
    """The board page; it shows the airport's local time (its zone comes from the table of
    airports, never from the request)."""
    page = resources.files("jetbridge.web").joinpath("static/fids.html").read_text()
    return page.replace("{{airport_zone}}", zone_for(airport).key)


@router.post("/api/ingest/{kind}")
async def push_feed(
    kind: Annotated[str, Path(pattern=r"^(aidx|mvt|asm)$")],
    request: Request,
    backbone: BackboneDep,
    _: Feeds,
    limits: FeedLimitsDep,
) -> dict[str, Any]:
    """Push AIDX XML (in the encoding it declares), MVT or ASM telex; a malformed message is
    logged and answered with 400. A telex naming no single known flight is logged and listed
    under `refused` (with its line); the other messages are applied. Parts of a message that
    are not understood are kept on the flight and listed under `warnings` (and logged)."""
    body = await request.body()
    hub = FlightHub(backbone)
    try:
        result = await asyncio.to_thread(
            ingest, hub, kind, body, received_at=datetime.now(UTC), origin="http", limits=limits
        )
    except ParseError as exc:
        raise InvalidRequest(str(exc)) from None
    return {"applied": result.applied, "refused": result.refused, "warnings": result.warnings}


@router.get("/api/ingest/errors")
def ingest_errors(
    backbone: BackboneDep,
    _: Operations,
    source: str | None = None,
    after_id: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Malformed messages from live feeds, kept for operators; the feeds themselves go on."""
    with backbone.reading() as conn:
        return list_errors(conn, source=source, after_id=after_id, limit=limit)
