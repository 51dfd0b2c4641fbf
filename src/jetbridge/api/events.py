"""HTTP API of the event backbone: buses, rules, targets, events, archives, replays, DLQ."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from jetbridge.api.deps import BackboneDep
from jetbridge.bounds import MAX_ID
from jetbridge.errors import InvalidRequest, NotFound
from jetbridge.events import archive, dlq, registry
from jetbridge.events.patterns import test_event_pattern
from jetbridge.events.specs import ArchiveSpec, BusSpec, ReplaySpec, RuleSpec, TargetSpec

router = APIRouter(prefix="/api", tags=["events"])


class PutEventsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entries: list[Any] = Field(
        description="CloudEvents 1.0 objects or EventBridge PutEvents entries"
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
def list_buses(backbone: BackboneDep) -> list[dict[str, Any]]:
    with backbone.reading() as conn:
        return registry.list_buses(conn)


@router.post("/buses", status_code=201)
def create_bus(spec: BusSpec, backbone: BackboneDep) -> dict[str, Any]:
    with backbone.transaction() as conn:
        return registry.create_bus(conn, spec=spec)


@router.get("/buses/{bus}")
def get_bus(bus: str, backbone: BackboneDep) -> dict[str, Any]:
    with backbone.reading() as conn:
        return registry.get_bus(conn, name=bus)


@router.delete("/buses/{bus}", status_code=204)
def delete_bus(bus: str, backbone: BackboneDep) -> None:
    with backbone.transaction() as conn:
        registry.delete_bus(conn, name=bus)


@router.get("/buses/{bus}/rules")
def list_rules(bus: str, backbone: BackboneDep) -> list[dict[str, Any]]:
    with backbone.reading() as conn:
        return registry.list_rules(conn, bus=bus)


@router.put("/buses/{bus}/rules/{rule}")
def put_rule(bus: str, rule: str, spec: RuleSpec, backbone: BackboneDep) -> dict[str, Any]:
    if spec.name != rule:
        raise InvalidRequest(f"name: {spec.name!r} does not match the rule in the path {rule!r}")
    with backbone.transaction() as conn:
        return registry.put_rule(conn, bus=bus, spec=spec)


@router.get("/buses/{bus}/rules/{rule}")
def get_rule(bus: str, rule: str, backbone: BackboneDep) -> dict[str, Any]:
    with backbone.reading() as conn:
        return registry.get_rule(conn, bus=bus, name=rule)


@router.delete("/buses/{bus}/rules/{rule}", status_code=204)
def delete_rule(bus: str, rule: str, backbone: BackboneDep) -> None:
    with backbone.transaction() as conn:
        registry.delete_rule(conn, bus=bus, name=rule)


@router.post("/buses/{bus}/rules/{rule}/{action}")
def set_rule_state(bus: str, rule: str, action: str, backbone: BackboneDep) -> dict[str, Any]:
    if action not in {"enable", "disable"}:
        raise NotFound(f"unknown rule action {action!r}; use enable or disable")
    with backbone.transaction() as conn:
        return registry.set_rule_state(conn, bus=bus, name=rule, enabled=action == "enable")


@router.put("/buses/{bus}/rules/{rule}/targets")
def put_targets(
    bus: str,
    rule: str,
    specs: Annotated[list[TargetSpec], Body(max_length=5)],
    backbone: BackboneDep,
) -> dict[str, Any]:
    with backbone.transaction() as conn:
        return registry.put_targets(conn, bus=bus, rule=rule, specs=specs)


@router.delete("/buses/{bus}/rules/{rule}/targets/{target_id}", status_code=204)
def remove_target(bus: str, rule: str, target_id: str, backbone: BackboneDep) -> None:
    with backbone.transaction() as conn:
        registry.remove_target(conn, bus=bus, rule=rule, target_id=target_id)


@router.post("/buses/{bus}/events")
def put_events(bus: str, request: PutEventsRequest, backbone: BackboneDep) -> dict[str, Any]:
    """Publish a batch atomically: every entry is validated before anything is written."""
    published = backbone.put_events(bus=bus, entries=request.entries)
    return {
        "entries": [
            {
                "event_id": p.event_id,
                "seq": p.seq,
                "duplicate": p.seq is None,
                "deliveries": p.deliveries,
            }
            for p in published
        ]
    }


@router.get("/buses/{bus}/events")
def read_events(
    bus: str,
    backbone: BackboneDep,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    with backbone.reading() as conn:
        registry.get_bus(conn, name=bus)
        stored = backbone.log.read(conn, bus=bus, after=after, limit=limit)
    return [
        {"seq": e.seq, "ingested_at": e.ingested_at, "event": json.loads(e.body)} for e in stored
    ]


@router.post("/test-event-pattern")
def test_pattern(body: PatternTest) -> dict[str, bool]:
    """EventBridge TestEventPattern: does the pattern match the event?"""
    return {"result": test_event_pattern(body.event_pattern, body.event)}


@router.get("/archives")
def list_archives(backbone: BackboneDep) -> list[dict[str, Any]]:
    with backbone.reading() as conn:
        return archive.list_archives(conn)


@router.post("/archives", status_code=201)
def create_archive(spec: ArchiveSpec, backbone: BackboneDep) -> dict[str, Any]:
    with backbone.transaction() as conn:
        return archive.create_archive(conn, spec=spec)


@router.get("/archives/{name}")
def get_archive(name: str, backbone: BackboneDep) -> dict[str, Any]:
    with backbone.reading() as conn:
        return archive.get_archive(conn, name=name)


@router.delete("/archives/{name}", status_code=204)
def delete_archive(name: str, backbone: BackboneDep) -> None:
    with backbone.transaction() as conn:
        archive.delete_archive(conn, name=name)


@router.get("/replays")
def list_replays(backbone: BackboneDep) -> list[dict[str, Any]]:
    with backbone.reading() as conn:
        return archive.list_replays(conn)


@router.post("/replays", status_code=201)
def start_replay(spec: ReplaySpec, backbone: BackboneDep) -> dict[str, Any]:
    with backbone.transaction() as conn:
        return archive.start_replay(conn, spec=spec)


@router.get("/replays/{name}")
def get_replay(name: str, backbone: BackboneDep) -> dict[str, Any]:
    with backbone.reading() as conn:
        return archive.get_replay(conn, name=name)


@router.post("/replays/{name}/cancel")
def cancel_replay(name: str, backbone: BackboneDep) -> dict[str, Any]:
    with backbone.transaction() as conn:
        return archive.cancel_replay(conn, name=name)


@router.get("/dlq")
def list_dead_letters(
    backbone: BackboneDep,
    bus: str | None = None,
    rule: str | None = None,
    include_redriven: bool = False,
    after_id: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    with backbone.reading() as conn:
        return dlq.list_dead_letters(
            conn,
            bus=bus,
            rule=rule,
            include_redriven=include_redriven,
            limit=limit,
            after_id=after_id,
        )


@router.post("/dlq/redrive")
def redrive(body: Redrive, backbone: BackboneDep) -> dict[str, int]:
    with backbone.transaction() as conn:
        count = dlq.redrive(conn, queue=backbone.log, ids=body.ids, bus=body.bus, rule=body.rule)
    return {"redriven": count}


@router.delete("/dlq/{letter_id}", status_code=204)
def discard_dead_letter(
    letter_id: Annotated[int, Path(ge=0, le=MAX_ID)], backbone: BackboneDep
) -> None:
    with backbone.transaction() as conn:
        dlq.discard(conn, letter_id=letter_id)


@router.get("/stats")
def stats(request: Request, backbone: BackboneDep) -> dict[str, Any]:
    worker = request.app.state.platform.worker
    return {
        "pending_deliveries": backbone.log.pending(),
        "worker": dict(worker.stats) if worker else {},
    }
