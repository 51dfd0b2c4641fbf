"""Process roles: what one `jetbridge up --role ...` process runs.

- `all` (the default): the HTTP API, the live pages and every background duty, in one process.
- `api`: the HTTP API and live pages only; stateless, any number behind any load balancer.
- `worker`: deliveries, workflow executions, timers, schedules and (with NATS) the outbox relay;
  any number share the work through the database (claims and leases).
- `capture`: change capture from the legacy AODB (`JETBRIDGE_AODB_URL`); any number may run,
  one captures at a time per source and another takes over when it goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy import Connection, Engine, text

from jetbridge.config import Settings
from jetbridge.errors import ConfigurationError

ROLES = ("all", "api", "worker", "capture")
_log = logging.getLogger(__name__)


def api_settings(role: str, settings: Settings) -> Settings:
    """The settings an HTTP-serving role runs with: `api` leaves the work to workers."""
    if role == "api":
        return settings.model_copy(update={"run_workers": False})
    return settings


def run_until_signalled(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    """Run `main(stop)` until SIGINT or SIGTERM sets `stop`."""

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await main(stop)

    asyncio.run(run())


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """The background duties without HTTP, whatever JETBRIDGE_RUN_WORKERS says."""
    from jetbridge.app import build_platform

    platform = build_platform(settings.model_copy(update={"run_workers": True}))
    await asyncio.to_thread(platform.prepare)
    await platform.start()
    print("jetbridge worker running", flush=True)
    try:
        await stop.wait()
    finally:
        await platform.stop()


async def run_capture(settings: Settings, stop: asyncio.Event) -> None:
    """Capture changes from the legacy AODB into the flight hub, one capturer per source."""
    from jetbridge.aodb.cdc import DEFAULT_MAPPING, TableMapping
    from jetbridge.aodb.sources import open_source
    from jetbridge.app import build_platform
    from jetbridge.flights.cdc_runner import CdcRunner
    from jetbridge.flights.hub import FlightHub
    from jetbridge.storage.db import create_database_engine

    if not settings.aodb_url:
        raise ConfigurationError("the capture role needs JETBRIDGE_AODB_URL (the legacy AODB)")
    platform = build_platform(settings.model_copy(update={"run_workers": False}))
    await asyncio.to_thread(platform.prepare)
    await platform.start()
    legacy = create_database_engine(settings.aodb_url)
    mapping = TableMapping.load(settings.aodb_mapping or DEFAULT_MAPPING)
    try:
        source = await asyncio.to_thread(
            open_source,
            settings.aodb_capture,
            url=settings.aodb_url,
            engine=legacy,
            mapping=mapping,
        )
        runner = CdcRunner(source, FlightHub(platform.backbone))
        print(f"jetbridge capture of {runner.name} standing by", flush=True)
        await while_leading(platform.engine, f"jetbridge capture {runner.name}", stop, runner.run)
    finally:
        await platform.stop()
        legacy.dispose()


async def while_leading(
    engine: Engine,
    name: str,
    stop: asyncio.Event,
    work: Callable[[asyncio.Event], Coroutine[Any, Any, Any]],
    *,
    check_seconds: float = 1.0,
) -> None:
    """Run `work(until)` while this process holds the PostgreSQL advisory lock `name`; wait for
    it while another process does. The lock goes with its holder's connection, so when a
    holder dies another process takes over within `check_seconds`. SQLite: one process."""
    if engine.dialect.name != "postgresql":
        await work(stop)
        return
    while not stop.is_set():
        holder = await asyncio.to_thread(_take_lock, engine, name)
        if holder is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), check_seconds)
            continue
        lost = asyncio.Event()
        working: asyncio.Task[Any] = asyncio.create_task(work(lost))
        _log.info("%s: this process leads", name)
        try:
            while not stop.is_set() and not working.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), check_seconds)
                if not await asyncio.to_thread(_still_held, holder):
                    _log.warning("%s: lost the lock's connection; standing by", name)
                    break
        finally:
            lost.set()
            await working
            await asyncio.to_thread(_release, holder)
        # Another process may have taken over meanwhile: give it the first chance.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), check_seconds)


def _take_lock(engine: Engine, name: str) -> Connection | None:
    try:
        conn = engine.connect()
    except Exception as exc:
        _log.warning("cannot reach the database to take %r (%s)", name, type(exc).__name__)
        return None
    taken = conn.execute(
        text("SELECT pg_try_advisory_lock(hashtextextended(:name, 0))"), {"name": name}
    ).scalar_one()
    conn.commit()
    if taken:
        return conn
    conn.close()
    return None


def _still_held(conn: Connection) -> bool:
    try:
        conn.execute(text("SELECT 1"))
        conn.commit()
    except Exception:
        return False
    return True


def _release(conn: Connection) -> None:
    with contextlib.suppress(Exception):
        conn.invalidate()  # closing the session releases the lock; never back to the pool
        conn.close()
