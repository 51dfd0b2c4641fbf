"""Process roles: what one `jetbridge up --role ...` process runs.

- `all` (the default): the HTTP API, the live pages and every background duty, in one process.
- `api`: the HTTP API and live pages only; stateless, any number behind any load balancer.
- `worker`: deliveries, workflow executions, timers, schedules and (with NATS) the outbox relay;
  any number share the work through the database (claims and leases).
- `capture`: change capture from every configured AODB source (the `[capture]` section, or
  `JETBRIDGE_AODB_URL`); any number may run, one captures at a time per source (a fenced lease)
  and another takes over when it goes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Coroutine
from typing import Any

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
    """Capture every configured AODB source into the flight hub: the settings file's
    `[capture]` sources, or the source `aodb` from `JETBRIDGE_AODB_*`. Each runs as
    `jetbridge capture --source NAME` does: one active capturer per source across processes,
    by a fenced lease holding its position (docs/flights.md)."""
    from jetbridge.aodb.settings import load_capture_settings
    from jetbridge.app import build_platform
    from jetbridge.flights.capture import capturer
    from jetbridge.flights.hub import FlightHub

    capture = load_capture_settings(
        settings.settings_file,
        aodb_url=settings.aodb_url,
        aodb_capture=settings.aodb_capture,
        aodb_mapping=settings.aodb_mapping,
    )
    if not capture.sources:
        raise ConfigurationError(
            "the capture role needs a source: a [capture] section in the settings file "
            "(JETBRIDGE_SETTINGS_FILE) or JETBRIDGE_AODB_URL"
        )
    platform = build_platform(settings.model_copy(update={"run_workers": False}))
    await asyncio.to_thread(platform.prepare)
    hub = FlightHub(platform.backbone)
    halt = threading.Event()
    workers = [capturer(capture, name, hub) for name in sorted(capture.sources)]
    runs = [asyncio.create_task(asyncio.to_thread(worker.run, halt)) for worker in workers]
    print(f"jetbridge capture of {', '.join(sorted(capture.sources))} standing by", flush=True)
    try:
        await stop.wait()
    finally:
        halt.set()
        await asyncio.gather(*runs, return_exceptions=True)
        platform.engine.dispose()
