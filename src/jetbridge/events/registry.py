"""Buses, rules and targets: create, read, update, delete, validated before anything is written."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from jetbridge.errors import Conflict, Forbidden, InvalidRequest, NotFound
from jetbridge.events.handlers import SERVICE_PREFIX, HandlerRegistry
from jetbridge.events.patterns import InvalidEventPattern, parse_pattern
from jetbridge.events.routing import bump_version, target_spec_from_row
from jetbridge.events.schedule import InvalidScheduleExpression, parse_schedule
from jetbridge.events.specs import BusSpec, RuleSpec, TargetSpec
from jetbridge.events.transform import InvalidInputTransform, TargetInput
from jetbridge.storage.schema import buses, dead_letters, rules, targets


def create_bus(conn: Connection, *, spec: BusSpec, tenant: str | None = None) -> dict[str, Any]:
    """A new bus owned by `tenant` (None: the platform's own)."""
    if _bus_exists(conn, spec.name):
        raise Conflict(f"event bus {spec.name!r} already exists")
    now = time.time()
    conn.execute(
        insert(buses).values(
            name=spec.name, description=spec.description, created_at=now, tenant=tenant
        )
    )
    return {"name": spec.name, "description": spec.description, "created_at": now, "tenant": tenant}


def ensure_bus(
    conn: Connection, *, name: str, description: str = "", tenant: str | None = None
) -> None:
    """Create `name` if it is missing (the default bus, tenants' buses, the demo)."""
    if not _bus_exists(conn, name):
        create_bus(conn, spec=BusSpec(name=name, description=description), tenant=tenant)


def list_buses(conn: Connection, *, tenant: str | None = None) -> list[dict[str, Any]]:
    """Every bus, or with `tenant` only that tenant's."""
    query = select(buses).order_by(buses.c.name)
    if tenant is not None:
        query = query.where(buses.c.tenant == tenant)
    return [_bus_dict(row) for row in conn.execute(query)]


def bus_owner(conn: Connection, *, name: str) -> str | None:
    """The tenant owning bus `name` (None: the platform); NotFound if there is no such bus."""
    return str(get_bus(conn, name=name)["tenant"] or "") or None


def get_bus(conn: Connection, *, name: str) -> dict[str, Any]:
    row = conn.execute(select(buses).where(buses.c.name == name)).first()
    if row is None:
        raise NotFound(f"event bus {name!r} does not exist")
    return _bus_dict(row)


def delete_bus(conn: Connection, *, name: str) -> None:
    get_bus(conn, name=name)
    if name == "default":
        raise Conflict("the default event bus cannot be deleted")
    count = conn.execute(select(func.count()).where(rules.c.bus == name)).scalar_one()
    if count:
        raise Conflict(f"event bus {name!r} still has {count} rule(s); delete them first")
    conn.execute(delete(buses).where(buses.c.name == name))


def put_rule(
    conn: Connection, *, bus: str, spec: RuleSpec, handlers: HandlerRegistry
) -> dict[str, Any]:
    """Create or replace a caller's rule and its targets; anything invalid writes nothing.

    Its Python targets may name only public registered handlers, and a rule the platform
    installed cannot be replaced."""
    _refuse_platform_rule(conn, bus, spec.name)
    return _write_rule(conn, bus=bus, spec=spec, handlers=handlers, platform=False)


def install_rule(
    conn: Connection, *, bus: str, spec: RuleSpec, handlers: HandlerRegistry
) -> dict[str, Any]:
    """Create or replace one of the platform's own rules, which may name platform services."""
    return _write_rule(conn, bus=bus, spec=spec, handlers=handlers, platform=True)


def _write_rule(
    conn: Connection, *, bus: str, spec: RuleSpec, handlers: HandlerRegistry, platform: bool
) -> dict[str, Any]:
    get_bus(conn, name=bus)
    pattern = spec.pattern_json()
    _validate_trigger(pattern, spec.schedule_expression)
    for index, target in enumerate(spec.targets):
        _validate_target(conn, target, f"targets[{index}]", handlers, platform=platform)
    now = time.time()
    existing = _rule_row(conn, bus, spec.name)
    conn.execute(delete(rules).where(rules.c.bus == bus, rules.c.name == spec.name))
    conn.execute(delete(targets).where(targets.c.bus == bus, targets.c.rule == spec.name))
    conn.execute(
        insert(rules).values(
            bus=bus,
            name=spec.name,
            pattern=pattern,
            schedule=spec.schedule_expression,
            state=spec.state,
            description=spec.description,
            created_at=existing.created_at if existing else now,
            updated_at=now,
            schedule_last_fired=existing.schedule_last_fired if existing else None,
        )
    )
    _insert_targets(conn, bus, spec.name, spec.targets)
    bump_version(conn, bus)
    return get_rule(conn, bus=bus, name=spec.name)


def set_rule_pattern(
    conn: Connection, *, bus: str, name: str, event_pattern: Any, description: str | None = None
) -> dict[str, Any]:
    """Change a caller's rule's event pattern (and description) only: its targets, with their
    write-only credentials, stay as they are."""
    row = _rule_row(conn, bus, name)
    if row is None:
        raise NotFound(f"rule {name!r} on event bus {bus!r} does not exist")
    _refuse_platform_rule(conn, bus, name)
    if row.schedule is not None:
        raise InvalidRequest(f"rule {name!r} runs on a schedule; it has no event pattern")
    pattern = (
        event_pattern
        if isinstance(event_pattern, str)
        else json.dumps(event_pattern, separators=(",", ":"))
    )
    _validate_trigger(pattern, None)
    values: dict[str, Any] = {"pattern": pattern, "updated_at": time.time()}
    if description is not None:
        values["description"] = description
    conn.execute(update(rules).where(rules.c.bus == bus, rules.c.name == name).values(**values))
    bump_version(conn, bus)
    return get_rule(conn, bus=bus, name=name)


def _refuse_platform_rule(conn: Connection, bus: str, rule: str) -> None:
    """The platform's rules (those naming a platform service) are not callers' to change."""
    configs = conn.execute(
        select(targets.c.config).where(
            targets.c.bus == bus, targets.c.rule == rule, targets.c.kind == "python"
        )
    ).scalars()
    if any(str(json.loads(c).get("handler", "")).startswith(SERVICE_PREFIX) for c in configs):
        raise Forbidden(f"rule {rule!r} on event bus {bus!r} belongs to the platform")


def _validate_trigger(pattern: str | None, schedule: str | None) -> None:
    try:
        if pattern is not None:
            parse_pattern(pattern)
        if schedule is not None:
            parse_schedule(schedule)
    except InvalidEventPattern as exc:
        raise InvalidRequest(f"event_pattern: {exc}") from None
    except InvalidScheduleExpression as exc:
        raise InvalidRequest(f"schedule_expression: {exc}") from None


def _validate_target(
    conn: Connection, target: TargetSpec, where: str, handlers: HandlerRegistry, *, platform: bool
) -> None:
    if target.kind == "python" and target.handler is not None:
        refusal = handlers.refusal(target.handler, platform=platform)
        if refusal is not None:
            raise InvalidRequest(f"{where}.handler: target {target.id!r}: {refusal}")
    config = target.input_config()
    try:
        if config is not None:
            TargetInput.from_config(config)
    except InvalidInputTransform as exc:
        raise InvalidRequest(f"{where}.{exc}") from None
    if target.kind == "workflow" and target.definition is not None:
        from jetbridge.workflows import InvalidDefinition, check_resources, validate_definition

        try:
            check_resources(validate_definition(target.definition), handlers.public)
        except InvalidDefinition as exc:
            raise InvalidRequest(f"{where}.definition: {exc}") from None
    if target.kind == "bus" and target.bus and not _bus_exists(conn, target.bus):
        raise InvalidRequest(f"{where}.bus: event bus {target.bus!r} does not exist")


def _insert_targets(conn: Connection, bus: str, rule: str, specs: Sequence[TargetSpec]) -> None:
    for spec in specs:
        input_config = spec.input_config()
        conn.execute(
            insert(targets).values(
                bus=bus,
                rule=rule,
                target_id=spec.id,
                kind=spec.kind,
                config=json.dumps(spec.kind_config()),
                input=None if input_config is None else json.dumps(input_config),
                max_retry_attempts=spec.retry_policy.maximum_retry_attempts,
                max_event_age_seconds=spec.retry_policy.maximum_event_age_seconds,
                dead_letter=spec.dead_letter,
            )
        )


def put_targets(
    conn: Connection,
    *,
    bus: str,
    rule: str,
    specs: Sequence[TargetSpec],
    handlers: HandlerRegistry,
) -> dict[str, Any]:
    """Add or replace targets of an existing caller's rule (at most five per rule)."""
    current = get_rule(conn, bus=bus, name=rule)
    _refuse_platform_rule(conn, bus, rule)
    for index, spec in enumerate(specs):
        _validate_target(conn, spec, f"targets[{index}]", handlers, platform=False)
    kept = {t["id"] for t in current["targets"]} - {spec.id for spec in specs}
    if len(kept) + len(specs) > 5:
        raise InvalidRequest("targets: a rule has at most 5 targets")
    ids = [spec.id for spec in specs]
    conn.execute(
        delete(targets).where(
            targets.c.bus == bus, targets.c.rule == rule, targets.c.target_id.in_(ids)
        )
    )
    _insert_targets(conn, bus, rule, specs)
    bump_version(conn, bus)
    return get_rule(conn, bus=bus, name=rule)


def remove_target(conn: Connection, *, bus: str, rule: str, target_id: str) -> None:
    _refuse_platform_rule(conn, bus, rule)
    removed = conn.execute(
        delete(targets).where(
            targets.c.bus == bus, targets.c.rule == rule, targets.c.target_id == target_id
        )
    )
    if removed.rowcount == 0:
        raise NotFound(f"target {target_id!r} of rule {rule!r} on bus {bus!r} does not exist")
    bump_version(conn, bus)


def get_rule(conn: Connection, *, bus: str, name: str) -> dict[str, Any]:
    row = _rule_row(conn, bus, name)
    if row is None:
        raise NotFound(f"rule {name!r} on event bus {bus!r} does not exist")
    rows = conn.execute(
        select(targets)
        .where(targets.c.bus == bus, targets.c.rule == name)
        .order_by(targets.c.target_id)
    )
    return _rule_dict(row, [_redacted(target_spec_from_row(t)) for t in rows])


def _redacted(spec: TargetSpec) -> dict[str, Any]:
    """Target as shown to callers: credentials are write-only."""
    shown = spec.model_dump(exclude_none=True)
    for secret in ("api_key", "secret"):
        if secret in shown:
            shown[secret] = "****"
    return shown


def list_rules(conn: Connection, *, bus: str) -> list[dict[str, Any]]:
    get_bus(conn, name=bus)
    names = conn.execute(select(rules.c.name).where(rules.c.bus == bus).order_by(rules.c.name))
    return [get_rule(conn, bus=bus, name=name) for name in names.scalars()]


def delete_rule(conn: Connection, *, bus: str, name: str) -> None:
    get_rule(conn, bus=bus, name=name)
    _refuse_platform_rule(conn, bus, name)
    conn.execute(delete(targets).where(targets.c.bus == bus, targets.c.rule == name))
    conn.execute(delete(rules).where(rules.c.bus == bus, rules.c.name == name))
    bump_version(conn, bus)


def set_rule_state(conn: Connection, *, bus: str, name: str, enabled: bool) -> dict[str, Any]:
    get_rule(conn, bus=bus, name=name)
    _refuse_platform_rule(conn, bus, name)
    conn.execute(
        update(rules)
        .where(rules.c.bus == bus, rules.c.name == name)
        .values(state="ENABLED" if enabled else "DISABLED", updated_at=time.time())
    )
    bump_version(conn, bus)
    return get_rule(conn, bus=bus, name=name)


def rule_arn(*, region: str, account: str, bus: str, rule: str) -> str:
    prefix = "" if bus == "default" else f"{bus}/"
    return f"arn:aws:events:{region}:{account}:rule/{prefix}{rule}"


def _bus_exists(conn: Connection, name: str) -> bool:
    return conn.execute(select(buses.c.name).where(buses.c.name == name)).first() is not None


def _rule_row(conn: Connection, bus: str, name: str) -> Any:
    return conn.execute(select(rules).where(rules.c.bus == bus, rules.c.name == name)).first()


def _bus_dict(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "description": row.description,
        "created_at": row.created_at,
        "tenant": row.tenant,
    }


def _rule_dict(row: Any, target_list: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": row.name,
        "bus": row.bus,
        "event_pattern": json.loads(row.pattern) if row.pattern else None,
        "schedule_expression": row.schedule,
        "state": row.state,
        "description": row.description,
        "targets": target_list,
    }


def dead_letter_count(conn: Connection, *, bus: str) -> int:
    query = select(func.count()).where(
        dead_letters.c.bus == bus, dead_letters.c.redriven_at.is_(None)
    )
    return int(conn.execute(query).scalar_one())
