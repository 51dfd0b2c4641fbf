"""What a caller's tenant owns: buses (and through them rules, targets, archives, replays, dead
letters). Another tenant's resource answers 404, as if it did not exist."""

from __future__ import annotations

from sqlalchemy import Connection, select

from jetbridge.errors import NotFound
from jetbridge.events.registry import bus_owner
from jetbridge.ops.identity.principal import Principal
from jetbridge.storage.schema import buses


def visible_buses(conn: Connection, caller: Principal) -> set[str] | None:
    """The buses the caller may manage; None: every bus (the platform's operator)."""
    if caller.is_operator:
        return None
    if caller.tenant is None:
        return set()
    rows = conn.execute(select(buses.c.name).where(buses.c.tenant == caller.tenant))
    return {str(name) for name in rows.scalars()}


def own_bus(conn: Connection, caller: Principal, bus: str) -> None:
    """NotFound unless the caller's tenant owns `bus` (or the caller is the operator)."""
    try:
        owner = bus_owner(conn, name=bus)
    except NotFound:
        raise NotFound(f"event bus {bus!r} does not exist") from None
    if not caller.may_act_for(owner):
        raise NotFound(f"event bus {bus!r} does not exist")


def own_tenant(caller: Principal, tenant: str | None, what: str) -> None:
    if not caller.may_act_for(tenant):
        raise NotFound(f"{what} does not exist")
