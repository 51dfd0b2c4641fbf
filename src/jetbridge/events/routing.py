"""Per-bus routing tables: the compiled rule matcher and each rule's targets.

A bus row carries `rules_version`, bumped by every rule, target or archive change; each process
reloads a bus's routing when the version it holds is stale, so all processes route alike.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from jetbridge.errors import NotFound
from jetbridge.events.patterns import RuleMatcher
from jetbridge.events.specs import TargetSpec
from jetbridge.events.transform import TargetInput
from jetbridge.storage.schema import archives, buses, rules, targets

RULE_KEY = "rule:"
ARCHIVE_KEY = "archive:"


@dataclass(frozen=True, slots=True)
class RouteTarget:
    spec: TargetSpec
    shaper: TargetInput | None


@dataclass(slots=True)
class Routing:
    bus: str
    version: int
    matcher: RuleMatcher = field(default_factory=RuleMatcher)
    targets: dict[str, dict[str, RouteTarget]] = field(default_factory=dict)
    enabled: set[str] = field(default_factory=set)

    def target(self, rule: str, target_id: str) -> RouteTarget | None:
        return self.targets.get(rule, {}).get(target_id)


def target_spec_from_row(row: Any) -> TargetSpec:
    body: dict[str, Any] = {"id": row.target_id, "kind": row.kind, **json.loads(row.config)}
    if row.input:
        body.update(json.loads(row.input))
    body["retry_policy"] = {
        "maximum_retry_attempts": row.max_retry_attempts,
        "maximum_event_age_seconds": row.max_event_age_seconds,
    }
    body["dead_letter"] = row.dead_letter
    return TargetSpec.model_validate(body)


def shaper_for(spec: TargetSpec) -> TargetInput | None:
    config = spec.input_config()
    return None if config is None else TargetInput.from_config(config)


# Built once: asked on every publish and every claim.
_VERSION = select(buses.c.rules_version).where(buses.c.name == bindparam("bus"))


class RoutingCache:
    """Thread-safe cache of `Routing` per bus, refreshed by version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_bus: dict[str, Routing] = {}

    def get(self, conn: Connection, bus: str) -> Routing:
        version = conn.execute(_VERSION, {"bus": bus}).scalar()
        if version is None:
            raise NotFound(f"event bus {bus!r} does not exist")
        with self._lock:
            cached = self._by_bus.get(bus)
        if cached is not None and cached.version == version:
            return cached
        routing = load_routing(conn, bus, int(version))
        with self._lock:
            self._by_bus[bus] = routing
        return routing

    def forget(self, bus: str) -> None:
        with self._lock:
            self._by_bus.pop(bus, None)


def load_routing(conn: Connection, bus: str, version: int) -> Routing:
    routing = Routing(bus=bus, version=version)
    for row in conn.execute(select(rules).where(rules.c.bus == bus)):
        if row.state == "ENABLED":
            routing.enabled.add(row.name)
        if row.pattern is not None:
            routing.matcher.add(RULE_KEY + row.name, row.pattern)
        routing.targets.setdefault(row.name, {})
    for row in conn.execute(select(targets).where(targets.c.bus == bus)):
        spec = target_spec_from_row(row)
        routing.targets.setdefault(row.rule, {})[row.target_id] = RouteTarget(
            spec, shaper_for(spec)
        )
    for row in conn.execute(select(archives).where(archives.c.bus == bus)):
        routing.matcher.add(ARCHIVE_KEY + row.name, row.pattern or '{"version": ["0"]}')
    return routing


def bump_version(conn: Connection, bus: str) -> None:
    conn.execute(
        update(buses).where(buses.c.name == bus).values(rules_version=buses.c.rules_version + 1)
    )
