"""The audit trail: every management action is an event on the `audit` bus (who, for which
tenant, what, on what, when, from where), kept in the log and queryable by administrators."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from sqlalchemy import Connection

from jetbridge.events.backbone import Backbone
from jetbridge.events.envelope import CloudEvent
from jetbridge.ops.identity.principal import Principal

AUDIT_BUS = "audit"
SOURCE = "jetbridge.audit"


def audit_event(
    principal: Principal, *, action: str, resource: str, origin: str, outcome: str = "allowed"
) -> CloudEvent:
    return CloudEvent(
        id=str(uuid.uuid4()),
        source=SOURCE,
        type="audit.recorded",
        subject=resource[:256],
        tenant=principal.tenant,
        data={
            "actor": principal.subject,
            "actor_kind": principal.kind,
            "roles": sorted(principal.roles),
            "tenant": principal.tenant,
            "action": action,
            "resource": resource,
            "origin": origin,
            "outcome": outcome,
            "at": time.time(),
        },
    )


def record(
    backbone: Backbone,
    principal: Principal,
    *,
    action: str,
    resource: str,
    origin: str,
    outcome: str = "allowed",
    conn: Connection | None = None,
) -> None:
    event = audit_event(principal, action=action, resource=resource, origin=origin, outcome=outcome)
    if conn is not None:
        backbone.publish(conn, bus=AUDIT_BUS, events=[event])
        return
    with backbone.transaction() as own:
        backbone.publish(own, bus=AUDIT_BUS, events=[event])


def read(
    backbone: Backbone, *, tenant: str | None, all_tenants: bool, after: int, limit: int
) -> list[dict[str, Any]]:
    """Audit records after position `after`, those of `tenant` only unless `all_tenants`."""
    found: list[dict[str, Any]] = []
    position = after
    with backbone.reading() as conn:
        while len(found) < limit:
            batch = backbone.log.read(conn, bus=AUDIT_BUS, after=position, limit=500)
            if not batch:
                break
            for stored in batch:
                position = stored.seq
                body = json.loads(stored.body)
                data = body.get("data") or {}
                if all_tenants or data.get("tenant") == tenant:
                    found.append({"seq": stored.seq, **data})
                    if len(found) >= limit:
                        break
    return found
