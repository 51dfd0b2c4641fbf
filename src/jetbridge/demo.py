"""Demo traffic for `jetbridge up --demo`: flight events flowing through the default bus."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI

from jetbridge.events import registry
from jetbridge.events.envelope import CloudEvent
from jetbridge.events.specs import RuleSpec

log = logging.getLogger(__name__)
AIRLINES = ["BA", "LH", "AF", "KL", "IB", "EI", "SK", "LX"]
DESTINATIONS = ["JFK", "CDG", "FRA", "AMS", "MAD", "DUB", "CPH", "ZRH", "LIS", "ATH"]


def log_gate_change(event: dict[str, Any]) -> None:
    """Demo target: report a gate change (no personal data)."""
    detail = event.get("detail", {})
    log.info("gate change %s -> gate %s", detail.get("flight"), detail.get("gate"))


def install_demo(app: FastAPI) -> None:
    """Add a demo rule and a task publishing a flight event every second while the app runs."""
    platform = app.state.platform
    outer = app.router.lifespan_context

    async def generate(stop: asyncio.Event) -> None:
        rng = random.Random(7)
        while not stop.is_set():
            event = _random_flight_event(rng)
            await asyncio.to_thread(platform.backbone.put_events, bus="default", entries=[event])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)

    def demo_rule() -> None:
        spec = RuleSpec.model_validate(
            {
                "name": "demo-gate-changes",
                "event_pattern": {
                    "source": ["jetbridge.demo"],
                    "detail-type": ["flight.gate_changed"],
                },
                "targets": [
                    {"id": "log", "kind": "python", "handler": "jetbridge.demo:log_gate_change"}
                ],
            }
        )
        with platform.backbone.transaction() as conn:
            registry.put_rule(conn, bus="default", spec=spec)

    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(inner: FastAPI) -> AsyncIterator[None]:
        async with outer(inner):
            await asyncio.to_thread(demo_rule)
            stop = asyncio.Event()
            task = asyncio.create_task(generate(stop))
            try:
                yield
            finally:
                stop.set()
                await task

    app.router.lifespan_context = lifespan


def _random_flight_event(rng: random.Random) -> dict[str, Any]:
    flight = f"{rng.choice(AIRLINES)}{rng.randint(100, 999)}"
    kind = rng.choice(
        ["flight.gate_changed", "flight.delayed", "flight.boarding", "flight.departed"]
    )
    detail: dict[str, Any] = {"flight": flight, "destination": rng.choice(DESTINATIONS)}
    if kind == "flight.gate_changed":
        detail["gate"] = f"{rng.choice('ABC')}{rng.randint(1, 40)}"
    if kind == "flight.delayed":
        detail["delay_minutes"] = rng.randint(15, 120)
    event = CloudEvent(
        source="jetbridge.demo", type=kind, subject=flight, partitionkey=flight, data=detail
    )
    body = event.to_dict()
    body["time"] = datetime.now(UTC).isoformat()
    return body
