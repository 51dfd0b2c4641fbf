"""HTTP API of the event backbone: buses, rules, targets, events, archives, replays, DLQ."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from jetbridge.api.deps import BackboneDep, OutboundDep, check_outbound_url
from jetbridge.api.policy import FeedsOnLoop, Operations, SignedIn
from jetbridge.api.puts import PutEventsRoute, publish
from jetbridge.api.quotas import check_bus_count, check_rule_count
from jetbridge.api.tenancy import own_bus, visible_buses
from jetbridge.bounds import MAX_ID
from jetbridge.errors import InvalidRequest, NotFound
from jetbridge.events import archive, registry
from jetbridge.events.backbone import Backbone
from jetbridge.events.patterns import test_event_pattern
from jetbridge.events.specs import ArchiveSpec, BusSpec, ReplaySpec, RuleSpec, TargetSpec
from jetbridge.jsonlimits import stored_json
from jetbridge.ops.identity import store
from jetbridge.ops.identity.principal import Principal
from jetbridge.ops.outbound import OutboundPolicy
from jetbridge.workflows.grants import check_granted_resources

router = APIRouter(prefix="/api", tags=["events"])


class PutEventsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entries: list[Any] = Field(
        description="1 to 100 events, all published or none: CloudEvents 1.0 objects "
        '(specversion "1.0", source, type; optional id, subject, time, data as a JSON object, '
        "partitionkey, traceparent, tenant) or EventBridge PutEvents entries (Source, DetailType, "
        "Detail as a JSON object encoded in a string; optional Resources, Time, TraceHeader, "
        "EventBusName, which is ignored: the bus is the path's). Sources starting with "
        "jetbridge. or aws. are the platform's own and refused",
        examples=[
            [
                {
                    "specversion": "1.0",
                    "source": "airport.gates",
                    "type": "flight.gate_changed",
                    "subject": "LX0318-2026-11-24-ZRH-LHR",
                    "data": {"gate": "A12"},
                },
                {
                    "Source": "airport.gates",
                    "DetailType": "flight.gate_changed",
                    "Detail": '{"gate": "A12"}',
                },
            ]
        ],
    )


async def put_events(
    bus: str, body: PutEventsRequest, backbone: BackboneDep, caller: FeedsOnLoop, request: Request
) -> dict[str, Any]:
    """Publish a batch atomically: every entry is validated before anything is written.

    Validated on the event loop when small; written with the other puts arriving meanwhile in
    one transaction (group commit), and answered once that transaction has committed."""
    size = len(await request.body())  # read already: the body was parsed
    return await publish(backbone=backbone, bus=bus, entries=body.entries, caller=caller, size=size)


# The busiest route, first in the router, which tries routes in order; with a route class of its
# own: a well-formed put skips the generic body handling (jetbridge.api.puts).
router.add_api_route(
    "/buses/{bus}/events", put_events, methods=["POST"], route_class_override=PutEventsRoute
)


class PatternTest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_pattern: Any
    event: Any


class Redrive(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[Annotated[int, Field(ge=0, le=MAX_ID)]] | None = Field(default=None, max_length=10000)
    bus: str | None = None
    rule: str | None = None


@router.get("/buses")
def list_buses(backbone: BackboneDep, caller: Operations) -> list[dict[str, Any]]:
    with backbone.reading() as conn:
        if caller.is_operator:
            return registry.list_buses(conn)
        return registry.list_buses(conn, tenant=caller.tenant or "")


@router.post("/buses", status_code=201)
def create_bus(spec: BusSpec, backbone: BackboneDep, caller: Operations) -> dict[str, Any]:
    """A new bus owned by the caller's tenant (the operator's are the platform's)."""
    with backbone.transaction() as conn:
        check_bus_count(conn, caller.tenant)
        return registry.create_bus(conn, spec=spec, tenant=caller.tenant)


@router.get("/buses/{bus}")
def get_bus(bus: str, backbone: BackboneDep, caller: Operations) -> dict[str, Any]:
    with backbone.reading() as conn:
        own_bus(conn, caller, bus)
        return registry.get_bus(conn, name=bus)


@router.delete("/buses/{bus}", status_code=204)
def delete_bus(bus: str, backbone: BackboneDep, caller: Operations) -> None:
    with backbone.transaction() as conn:
        own_bus(conn, caller, bus)
        registry.delete_bus(conn, name=bus)


@router.get("/buses/{bus}/rules")
def list_rules(bus: str, backbone: BackboneDep, caller: Operations) -> list[dict[str, Any]]:
    with backbone.reading() as conn:
        own_bus(conn, caller, bus)
        return registry.list_rules(conn, bus=bus)


def _check_http_targets(specs: list[TargetSpec], policy: OutboundPolicy, where: str) -> None:
    for index, target in enumerate(specs):
        if target.kind == "http" and target.url is not None:
            check_outbound_url(policy, target.url, where=f"{where}[{index}].url")


@router.put("/buses/{bus}/rules/{rule}")
def put_rule(
    bus: str,
    rule: str,
    spec: RuleSpec,
    backbone: BackboneDep,
    caller: Operations,
    outbound: OutboundDep,
) -> dict[str, Any]:
    if spec.name != rule:
        raise InvalidRequest(f"name: {spec.name!r} does not match the rule in the path {rule!r}")
    _check_http_targets(spec.targets, outbound, "body.targets")
    with backbone.transaction() as conn:
        own_bus(conn, caller, bus)
        _own_targets(conn, caller, spec.targets, backbone)
        check_rule_count(conn, bus, rule)
        return registry.put_rule(conn, bus=bus, spec=spec, handlers=backbone.handlers)


@router.get("/buses/{bus}/rules/{rule}")
def get_rule(bus: str, rule: str, backbone: BackboneDep, caller: Operations) -> dict[str, Any]:
    with backbone.reading() as conn:
        own_bus(conn, caller, bus)
        return registry.get_rule(conn, bus=bus, name=rule)


@router.delete("/buses/{bus}/rules/{rule}", status_code=204)
def delete_rule(bus: str, rule: str, backbone: BackboneDep, caller: Operations) -> None:
    with backbone.transaction() as conn:
        own_bus(conn, caller, bus)
        registry.delete_rule(conn, bus=bus, name=rule)


@router.post("/buses/{bus}/rules/{rule}/{action}")
def set_rule_state(
    bus: str, rule: str, action: str, backbone: BackboneDep, caller: Operations
) -> dict[str, Any]:
    if action not in {"enable", "disable"}:
        raise NotFound(f"unknown rule action {action!r}; use enable or disable")
    with backbone.transaction() as conn:
        own_bus(conn, caller, bus)
        return registry.set_rule_state(conn, bus=bus, name=rule, enabled=action == "enable")


@router.put("/buses/{bus}/rules/{rule}/targets")
def put_targets(
    bus: str,
    rule: str,
    specs: Annotated[list[TargetSpec], Body(max_length=5)],
    backbone: BackboneDep,
    caller: Operations,
    outbound: OutboundDep,
) -> dict[str, Any]:
    _check_http_targets(specs, outbound, "body")
    with backbone.transaction() as conn:
        own_bus(conn, caller, bus)
        _own_targets(conn, caller, specs, backbone)
        return registry.put_targets(
            conn, bus=bus, rule=rule, specs=specs, handlers=backbone.handlers
        )


@router.delete("/buses/{bus}/rules/{rule}/targets/{target_id}", status_code=204)
def remove_target(
    bus: str, rule: str, target_id: str, backbone: BackboneDep, caller: Operations
) -> None:
    with backbone.transaction() as conn:
        own_bus(conn, caller, bus)
        registry.remove_target(conn, bus=bus, rule=rule, target_id=target_id)


@router.get("/buses/{bus}/events")
def read_events(
    bus: str,
    backbone: BackboneDep,
    caller: Operations,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    with backbone.reading() as conn:
        own_bus(conn, caller, bus)
        stored = backbone.log.read(conn, bus=bus, after=after, limit=limit)
    return [
        {"seq": e.seq, "ingested_at": e.ingested_at, "event": stored_json(e.body, where="event")}
        for e in stored
    ]


@router.post("/test-event-pattern")
def test_pattern(body: PatternTest, _: SignedIn) -> dict[str, bool]:
    """EventBridge TestEventPattern: does the pattern match the event?"""
    return {"result": test_event_pattern(body.event_pattern, body.event)}


@router.get("/archives")
def list_archives(backbone: BackboneDep, caller: Operations) -> list[dict[str, Any]]:
    with backbone.reading() as conn:
        mine = visible_buses(conn, caller)
        found = archive.list_archives(conn)
    return [item for item in found if mine is None or item["bus"] in mine]


@router.post("/archives", status_code=201)
def create_archive(spec: ArchiveSpec, backbone: BackboneDep, caller: Operations) -> dict[str, Any]:
    with backbone.transaction() as conn:
        own_bus(conn, caller, spec.bus)
        return archive.create_archive(conn, spec=spec)


@router.get("/archives/{name}")
def get_archive(name: str, backbone: BackboneDep, caller: Operations) -> dict[str, Any]:
    with backbone.reading() as conn:
        return _own_archive(conn, caller, name)


@router.delete("/archives/{name}", status_code=204)
def delete_archive(name: str, backbone: BackboneDep, caller: Operations) -> None:
    with backbone.transaction() as conn:
        _own_archive(conn, caller, name)
        archive.delete_archive(conn, name=name)


@router.get("/replays")
def list_replays(backbone: BackboneDep, caller: Operations) -> list[dict[str, Any]]:
    with backbone.reading() as conn:
        mine = visible_buses(conn, caller)
        found = archive.list_replays(conn)
    return [item for item in found if mine is None or item["destination_bus"] in mine]


@router.post("/replays", status_code=201)
def start_replay(spec: ReplaySpec, backbone: BackboneDep, caller: Operations) -> dict[str, Any]:
    with backbone.transaction() as conn:
        _own_archive(conn, caller, spec.archive)
        own_bus(conn, caller, spec.destination_bus)
        return archive.start_replay(conn, spec=spec)


@router.get("/replays/{name}")
def get_replay(name: str, backbone: BackboneDep, caller: Operations) -> dict[str, Any]:
    with backbone.reading() as conn:
        return _own_replay(conn, caller, name)


@router.post("/replays/{name}/cancel")
def cancel_replay(name: str, backbone: BackboneDep, caller: Operations) -> dict[str, Any]:
    with backbone.transaction() as conn:
        _own_replay(conn, caller, name)
        return archive.cancel_replay(conn, name=name)


@router.get("/dlq")
def list_dead_letters(
    backbone: BackboneDep,
    caller: Operations,
    bus: str | None = None,
    rule: str | None = None,
    include_redriven: bool = False,
    after_id: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    with backbone.reading() as conn:
        within = visible_buses(conn, caller)
    return backbone.dead_letters.list(
        bus=bus,
        rule=rule,
        include_redriven=include_redriven,
        limit=limit,
        after_id=after_id,
        within=within,
    )


@router.post("/dlq/redrive")
def redrive(body: Redrive, backbone: BackboneDep, caller: Operations) -> dict[str, int]:
    with backbone.reading() as conn:
        within = visible_buses(conn, caller)
    count = backbone.dead_letters.redrive(ids=body.ids, bus=body.bus, rule=body.rule, within=within)
    return {"redriven": count}


@router.delete("/dlq/{letter_id}", status_code=204)
def discard_dead_letter(
    letter_id: Annotated[int, Path(ge=0, le=MAX_ID)], backbone: BackboneDep, caller: Operations
) -> None:
    with backbone.reading() as conn:
        within = visible_buses(conn, caller)
    backbone.dead_letters.discard(letter_id=letter_id, within=within)


@router.get("/stats")
def stats(request: Request, backbone: BackboneDep, _: Operations) -> dict[str, Any]:
    worker = request.app.state.platform.worker
    return {
        "pending_deliveries": backbone.log.pending(),
        "worker": dict(worker.stats) if worker else {},
    }


def _own_targets(
    conn: Connection, caller: Principal, specs: list[TargetSpec], backbone: Backbone
) -> None:
    """A rule forwards to its owner's buses; an airport's rules (and the operator's) may also
    forward to an airline's bus: that is how flight events are shared, by the sender's rules.
    An airline's rules never reach another tenant's bus. Python targets and workflow targets'
    Tasks name only handlers granted to the caller's tenant."""
    granted = backbone.handlers.granted_names(caller.tenant, operator=caller.is_operator)
    sharer = caller.is_operator or _is_airport(conn, caller.tenant)
    for spec in specs:
        handler = spec.handler or ""
        if spec.kind == "python" and handler in backbone.handlers.public and handler not in granted:
            raise InvalidRequest(
                f"targets: {spec.id}: handler {handler!r} is not granted to your tenant"
            )
        if spec.kind == "workflow" and spec.definition is not None:
            check_granted_resources(
                spec.definition,
                granted,
                f"targets: {spec.id}: ",
                registered=backbone.handlers.public,
            )
        if spec.kind != "bus" or spec.bus is None or sharer:
            continue
        try:
            own_bus(conn, caller, spec.bus)
        except NotFound:
            raise InvalidRequest(
                f"targets: {spec.id}: bus {spec.bus!r} is not one of your tenant's buses"
            ) from None


def _is_airport(conn: Connection, tenant: str | None) -> bool:
    found = store.get_tenant(conn, tenant) if tenant else None
    return found is not None and found["kind"] == "airport"


def _own_archive(conn: Connection, caller: Principal, name: str) -> dict[str, Any]:
    found = archive.get_archive(conn, name=name)
    try:
        own_bus(conn, caller, found["bus"])
    except NotFound:
        raise NotFound(f"archive {name!r} does not exist") from None
    return found


def _own_replay(conn: Connection, caller: Principal, name: str) -> dict[str, Any]:
    found = archive.get_replay(conn, name=name)
    try:
        own_bus(conn, caller, found["destination_bus"])
    except NotFound:
        raise NotFound(f"replay {name!r} does not exist") from None
    return found
