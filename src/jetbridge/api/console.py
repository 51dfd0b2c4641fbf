"""What the operations console needs beyond the bus and workflow APIs: a pattern tried against
a bus's recent events, a dead letter edited and redriven to its own target, an execution's
state machine as a graph with each state's progress, and how ingestion is doing."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select, update

from jetbridge.api.deps import BackboneDep
from jetbridge.api.policy import Operations, PlatformOperations
from jetbridge.api.tenancy import own_bus, visible_buses
from jetbridge.api.workflows import Workflows, own_execution
from jetbridge.bounds import MAX_ID
from jetbridge.errors import InvalidRequest, NotFound
from jetbridge.events import registry
from jetbridge.events.backbone import Backbone
from jetbridge.events.dlq_jetstream import JetStreamDeadLetters
from jetbridge.events.envelope import (
    CloudEvent,
    InvalidEvent,
    cloud_event_from_dict,
    cloud_event_from_json,
    eventbridge_view,
)
from jetbridge.events.log import NewDelivery
from jetbridge.events.patterns import InvalidEventPattern, parse_pattern
from jetbridge.ops import ingestion
from jetbridge.ops.identity.principal import Principal
from jetbridge.storage.schema import dead_letters, events
from jetbridge.workflows.graph import execution_graph

router = APIRouter(prefix="/api/console", tags=["console"])


class PatternTrial(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_pattern: Annotated[str, Field(min_length=1, max_length=4096)] | dict[str, Any]
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


@router.post("/buses/{bus}/pattern-trial")
def try_pattern(
    bus: str, body: PatternTrial, backbone: BackboneDep, caller: Operations
) -> dict[str, Any]:
    """Which of the bus's last `limit` events would the pattern match, as a rule would see
    them (the EventBridge event shape)? An invalid pattern is a 400 naming what is wrong."""
    try:
        compiled = parse_pattern(body.event_pattern)
    except InvalidEventPattern as exc:
        raise InvalidRequest(f"event_pattern: {exc}") from None
    publisher = backbone.publisher
    with backbone.reading() as conn:
        own_bus(conn, caller, bus)
        latest = backbone.log.latest_seq(conn, bus=bus)
        stored = backbone.log.read(
            conn, bus=bus, after=max(latest - body.limit, 0), limit=body.limit
        )
    matches = []
    for entry in stored:
        event = cloud_event_from_json(entry.body)
        view = eventbridge_view(event, account=publisher.account, region=publisher.region)
        if compiled.matches(view):
            matches.append({"seq": entry.seq, "event": view})
    return {"checked": len(stored), "matched": len(matches), "matches": matches}


class RulePattern(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_pattern: Annotated[str, Field(min_length=1, max_length=4096)] | dict[str, Any]
    description: Annotated[str, Field(max_length=512)] | None = None


@router.put("/buses/{bus}/rules/{rule}/pattern")
def set_rule_pattern(
    bus: str, rule: str, body: RulePattern, backbone: BackboneDep, caller: Operations
) -> dict[str, Any]:
    """Edit a rule's pattern without re-sending its targets (whose credentials are
    write-only): an invalid pattern changes nothing and says what is wrong."""
    with backbone.transaction() as conn:
        own_bus(conn, caller, bus)
        return registry.set_rule_pattern(
            conn, bus=bus, name=rule, event_pattern=body.event_pattern, description=body.description
        )


class EditedRedrive(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event: dict[str, Any]


@router.post("/dlq/{letter_id}/redrive")
def redrive_edited(
    letter_id: Annotated[int, Path(ge=0, le=MAX_ID)],
    body: EditedRedrive,
    backbone: BackboneDep,
    caller: Operations,
) -> dict[str, Any]:
    """Deliver an edited copy of a dead letter's event to the letter's own target (no other
    rule sees it). Its source and type stay those of the original; it gets a new id and the
    letter is marked redriven (in distributed mode: removed from the dead-letter stream)."""
    letters = backbone.dead_letters
    stream = letters if isinstance(letters, JetStreamDeadLetters) else None
    kept: dict[str, Any] | None = None
    if stream is not None:
        with backbone.reading() as conn:
            within = visible_buses(conn, caller)
        kept = stream.letter(letter_id, within=within)
        if kept is None:
            raise NotFound(f"dead letter {letter_id} does not exist or was already redriven")
    with backbone.transaction() as conn:
        if kept is None:
            bus, rule, target_id, text = _stored_letter(conn, letter_id, caller)
        else:
            bus, rule, target_id = kept["bus"], kept["rule"], kept["target_id"]
            text = kept["raw_event"]
        event = _edited(backbone, cloud_event_from_json(text), body.event)
        now = time.time()
        (seq,) = backbone.log.append(conn, [backbone.publisher.entry(bus, event)], now=now)
        assert seq is not None  # a fresh id never collides
        backbone.log.enqueue(
            conn, [NewDelivery(seq, bus, rule, target_id, event.partitionkey)], now=now
        )
        if kept is None:
            conn.execute(
                update(dead_letters).where(dead_letters.c.id == letter_id).values(redriven_at=now)
            )
    if stream is not None:
        stream.remove(letter_id)
    return {"redriven": 1, "event_id": event.id, "seq": seq}


def _stored_letter(
    conn: Connection, letter_id: int, caller: Principal
) -> tuple[str, str, str, str]:
    """(bus, rule, target id, event JSON) of a letter in the database's dead-letter queue."""
    within = visible_buses(conn, caller)
    query = select(dead_letters).where(
        dead_letters.c.id == letter_id, dead_letters.c.redriven_at.is_(None)
    )
    if within is not None:
        query = query.where(dead_letters.c.bus.in_(list(within)))
    letter = conn.execute(query).first()
    if letter is None:
        raise NotFound(f"dead letter {letter_id} does not exist or was already redriven")
    stored = conn.execute(select(events.c.body).where(events.c.seq == letter.event_seq))
    text = stored.scalar()
    if text is None:
        raise NotFound(f"the event of dead letter {letter_id} is no longer kept")
    return letter.bus, letter.rule, letter.target_id, str(text)


def _edited(backbone: Backbone, original: CloudEvent, edited_body: dict[str, Any]) -> CloudEvent:
    edited = {**edited_body, "id": str(uuid.uuid4())}
    edited.setdefault("specversion", "1.0")
    try:
        event = cloud_event_from_dict(
            edited, max_bytes=backbone.max_event_bytes, limits=backbone.json_limits
        )
    except InvalidEvent as exc:
        raise InvalidRequest(f"event: {exc}") from None
    for name in ("source", "type"):
        if getattr(event, name) != getattr(original, name):
            raise InvalidRequest(
                f"event.{name}: an edited event keeps the original's {name} "
                f"({getattr(original, name)!r}); edit its data or subject instead"
            )
    return event


@router.get("/executions/{name}/graph")
def graph(name: str, workflows: Workflows, caller: Operations) -> dict[str, Any]:
    """The execution's state machine as nodes and edges, each state marked with what the
    execution did there: not reached, entered, succeeded, failed, or where it is now."""
    execution = own_execution(caller, workflows.describe(name=name))
    return execution_graph(
        workflows.definition(name=name), workflows.history(name=name), execution["status"]
    )


@router.get("/ingestion")
def ingestion_overview(
    request: Request, backbone: BackboneDep, _: PlatformOperations
) -> dict[str, Any]:
    """Each change-capture source (lease holder, last position time, lag, changes per minute
    over the last hour) and each feed (messages accepted, warned and refused). Capture lag and
    rates, and feed counts, are this process's; leases and logged problems span every process.
    Sources and feeds serve the whole platform: for its own operations staff."""
    monitor = request.app.state.platform.monitor
    with backbone.reading() as conn:
        return ingestion.overview(conn, monitor, now=time.time())
