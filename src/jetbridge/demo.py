"""`jetbridge up --demo`: a simulated airport day drives the platform end to end.

A week of the reference network (real carriers on routes they fly from Zurich) is published to
the flight hub and the booking catalogue at once, so the flights people book are the flights on
the board. The AODB simulator flies today's legs at ZRH in a legacy-style SQLite database
(`var/aodb.db`) at accelerated speed; SQL change capture feeds the flight hub; the hub publishes
flight events; the FIDS board, the trips page, the API and the live page show them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from sqlalchemy import func, select

from jetbridge.aodb.cdc import DEFAULT_MAPPING, TableMapping
from jetbridge.aodb.legacy import legacy_metadata, movements
from jetbridge.aodb.simulator import AodbSimulator, DayPlan, plan_flights
from jetbridge.aodb.sources import open_source
from jetbridge.events import registry
from jetbridge.events.specs import RuleSpec
from jetbridge.flights.cdc_runner import CdcRunner
from jetbridge.flights.hub import FlightHub
from jetbridge.schedules import network_schedule, planned_legs, publish_schedule
from jetbridge.storage.db import create_database_engine

log = logging.getLogger(__name__)
DEMO_SPEED = 60.0


def log_gate_change(event: dict[str, Any]) -> None:
    """Demo target: report a gate change (flight data only, no personal data)."""
    detail = event.get("detail", {})
    log.info(
        "gate change %s -> %s (version %s)",
        detail.get("flight_key"),
        detail.get("current"),
        detail.get("version"),
    )


DEMO_HOME = "ZRH"


def _demo_schedule(platform: Any, *, days: int = 7) -> DayPlan:
    """Publish a week of the network from today (hub flights and inventory alike); returns
    the plan of today's movements at ZRH for the simulator."""
    today = datetime.now(UTC).date()
    entries = network_schedule(start=today, days=days)
    publish_schedule(platform.backbone, entries)
    todays = [e for e in entries if e.operating_date == today]
    return plan_flights(seed=2026, home=DEMO_HOME, day=today, legs=planned_legs(todays))


def _demo_rule(platform: Any) -> None:
    spec = RuleSpec.model_validate(
        {
            "name": "demo-gate-changes",
            "event_pattern": {
                "source": ["jetbridge.flights"],
                "detail-type": ["flight.gate_changed"],
            },
            "targets": [{"id": "log", "kind": "python", "handler": "demo.log-gate-change"}],
        }
    )
    with platform.backbone.transaction() as conn:
        registry.put_rule(conn, bus="default", spec=spec, handlers=platform.backbone.handlers)


# Demo accounts only: `jetbridge users create` makes real ones (passwords never on a command line).
DEMO_ACCOUNTS = (
    ("passenger", "passenger-demo", ("passenger",), None),
    ("agent", "agent-demo-lx", ("agent",), "LX"),
    ("ops", "ops-demo-zrh", ("operations",), "ZRH"),
    ("admin", "admin-demo", ("admin",), None),
)


def _demo_tenants(platform: Any) -> None:
    """Zurich Airport runs the hub and shares Swiss's flights onto Swiss's own bus; the demo
    accounts sign in as a passenger, a Swiss agent, ZRH operations and the operator."""
    from jetbridge.app import hub_owner
    from jetbridge.ops.identity import store

    with platform.backbone.transaction() as conn:
        hub_owner(conn, "ZRH")
        if store.get_tenant(conn, "LX") is None:
            store.create_tenant(conn, tenant_id="LX", kind="airline", name="Swiss")
        for username, password, roles, tenant in DEMO_ACCOUNTS:
            if store.find_user(conn, username) is None:
                store.create_user(
                    conn, username=username, password=password, roles=frozenset(roles),
                    tenant=tenant,
                )  # fmt: skip
        share = RuleSpec.model_validate(
            {
                "name": "share-lx-flights",
                "description": "ZRH shares Swiss flights with Swiss",
                "event_pattern": {
                    "source": ["jetbridge.flights"],
                    "detail": {"flight": {"airline": ["LX"]}},
                },
                "targets": [{"id": "swiss", "kind": "bus", "bus": store.tenant_bus("LX")}],
            }
        )
        registry.put_rule(conn, bus="default", spec=share, handlers=platform.backbone.handlers)


def demo_sign_in_help(base: str) -> str:
    lines = [f"sign in at {base}/login (demo accounts):"]
    for username, password, roles, tenant in DEMO_ACCOUNTS:
        who = ", ".join(roles) + (f" of {tenant}" if tenant else "")
        lines.append(f"  {username:<10} {password:<16} {who}")
    return "\n".join(lines)


def install_demo(app: FastAPI, *, speed: float = DEMO_SPEED, reset: bool = False) -> None:
    """Run the AODB simulator and its change capture while the app runs. An AODB that already
    holds a simulated day is left as it is (captured, not rewritten) unless `reset`."""
    platform = app.state.platform
    platform.backbone.handlers.register("demo.log-gate-change", log_gate_change)
    outer = app.router.lifespan_context
    settings = platform.settings
    legacy_url = settings.aodb_url or f"sqlite:///{settings.data_dir / 'aodb.db'}"
    legacy = create_database_engine(legacy_url)
    mapping = TableMapping.load(settings.aodb_mapping or DEFAULT_MAPPING)

    @asynccontextmanager
    async def lifespan(inner: FastAPI) -> AsyncIterator[None]:
        async with outer(inner):
            await asyncio.to_thread(_demo_tenants, platform)
            await asyncio.to_thread(_demo_rule, platform)
            plan = await asyncio.to_thread(_demo_schedule, platform)
            simulator = AodbSimulator(legacy, plan, speed=speed)
            fresh = await asyncio.to_thread(_prepare_legacy, legacy, reset=reset)
            source = await asyncio.to_thread(
                open_source, settings.aodb_capture, url=legacy_url, engine=legacy, mapping=mapping
            )
            if fresh:
                await asyncio.to_thread(simulator.install)
            else:
                log.warning(
                    "the demo AODB already holds a simulated day: showing it as it is "
                    "(jetbridge up --demo --reset starts a new one)"
                )
            runner = CdcRunner(source, FlightHub(platform.backbone))
            platform.readiness[f"capture {runner.name}"] = runner.heartbeat.check
            stop_sim = threading.Event()
            stop = asyncio.Event()
            sim = asyncio.create_task(
                asyncio.to_thread(simulator.run, stop=stop_sim) if fresh else asyncio.sleep(0)
            )
            cdc = asyncio.create_task(runner.run(stop))
            try:
                yield
            finally:
                stop_sim.set()
                stop.set()
                await asyncio.gather(sim, cdc, return_exceptions=True)
                legacy.dispose()

    app.router.lifespan_context = lifespan


def _prepare_legacy(legacy: Any, *, reset: bool) -> bool:
    """Whether the simulator starts a new day: the legacy table is new, empty or `reset` (then
    dropped and made again); the capture opens on it before the day's schedule is written."""
    if reset:
        legacy_metadata.drop_all(legacy)
    legacy_metadata.create_all(legacy)
    with legacy.connect() as conn:
        return bool(conn.execute(select(func.count()).select_from(movements)).scalar() == 0)
