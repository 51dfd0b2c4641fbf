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
import contextlib
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any

from jetbridge.config import Settings
from jetbridge.errors import ConfigurationError

if TYPE_CHECKING:
    from fastapi import FastAPI

ROLES = ("all", "api", "worker", "capture")
_log = logging.getLogger(__name__)


def api_settings(role: str, settings: Settings) -> Settings:
    """The settings an HTTP-serving role runs with: `api` leaves the work to workers."""
    if role == "api":
        return settings.model_copy(update={"run_workers": False})
    return settings


# After the drain bound: time to close connections and write the last log lines.
CLOSE_SECONDS = 5.0
_watchdog_started = threading.Event()


def exit_by_bound(settings: Settings) -> None:
    """Make sure the process ends within JETBRIDGE_SHUTDOWN_SECONDS + CLOSE_SECONDS of the
    stop signal. Work on a thread cannot be interrupted (a workflow step's or handler's call in
    progress): if it still holds the process then, the process exits anyway; that work's lease
    lapses and it is done again elsewhere or after a restart (at least once)."""
    if _watchdog_started.is_set():
        return
    _watchdog_started.set()

    def watch() -> None:
        time.sleep(settings.shutdown_seconds + CLOSE_SECONDS)
        _log.warning(
            "shutdown: work still running %.0f s after the stop signal is left to its lease",
            settings.shutdown_seconds + CLOSE_SECONDS,
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    threading.Thread(target=watch, name="shutdown bound", daemon=True).start()


def serve(app: FastAPI, settings: Settings) -> None:
    """Serve HTTP until SIGINT or SIGTERM, then shut down cleanly within
    JETBRIDGE_SHUTDOWN_SECONDS: readiness answers "shutting down" and the workers stop claiming
    at once; uvicorn stops listening and lets in-flight requests finish; the lifespan then
    drains the background loops in what is left of the bound."""
    import uvicorn

    platform = app.state.platform

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            platform.draining = True  # readiness answers "shutting down" from now on
            exit_by_bound(settings)
            if platform.drain_deadline is None:
                platform.drain_deadline = time.monotonic() + settings.shutdown_seconds
            with contextlib.suppress(RuntimeError):  # no loop yet: nothing to drain
                loop = asyncio.get_running_loop()
                loop.call_soon_threadsafe(platform.begin_shutdown)
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # As uvicorn's, without raising the signal again once drained: a clean shutdown
            # exits 0, which is what supervisors and the tests expect.
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            previous = {signum: signal.signal(signum, self.handle_exit) for signum in handled}
            try:
                yield
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        # No access log: its lines carry client addresses and raw paths and queries, which may
        # hold personal data; requests are counted and traced by route template instead
        # (jetbridge.api.observe).
        access_log=False,
        # Client addresses come from X-Forwarded-For only behind JETBRIDGE_TRUSTED_PROXIES.
        proxy_headers=False,
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        # Open streams (SSE) never end by themselves: they are closed at the bound.
        timeout_graceful_shutdown=max(1, int(settings.shutdown_seconds)),
    )
    Server(config).run()


def run_until_signalled(
    main: Callable[[asyncio.Event], Coroutine[Any, Any, None]], settings: Settings
) -> None:
    """Run `main(stop)` until SIGINT or SIGTERM sets `stop`; then it has the shutdown bound."""

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def signalled() -> None:
            exit_by_bound(settings)
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, signalled)
        await main(stop)

    asyncio.run(run())


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """The background duties without HTTP, whatever JETBRIDGE_RUN_WORKERS says."""
    from jetbridge.app import build_platform

    platform = build_platform(settings.model_copy(update={"run_workers": True}))
    if platform.nats_wakeups is not None and platform.commits is not None:
        # A worker serves no live readers, and PostgreSQL's commit notifications wake its
        # duties: every event message on NATS would only be parsed to wake them once more.
        platform.nats_wakeups.subscribe = False
    await asyncio.to_thread(platform.prepare)
    await platform.start()
    gc.freeze()  # as for `jetbridge up`: start-up objects are not walked again
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
    # Daemon threads: a source stuck past the shutdown bound does not hold the process; its
    # lease then lapses and another capturer resumes from the last stored position.
    runs = [
        threading.Thread(target=worker.run, args=(halt,), name=f"capture {name}", daemon=True)
        for worker, name in zip(workers, sorted(capture.sources), strict=True)
    ]
    # As `jetbridge up` does once started: the full collections a busy capture's allocations
    # bring on need not walk the modules and start-up objects again (gc.freeze).
    gc.freeze()
    for run in runs:
        run.start()
    print(f"jetbridge capture of {', '.join(sorted(capture.sources))} standing by", flush=True)
    try:
        await stop.wait()
    finally:
        halt.set()  # each capturer finishes its batch, stores its position, hands its lease back
        deadline = time.monotonic() + settings.shutdown_seconds
        for run in runs:
            await asyncio.to_thread(run.join, max(0.0, deadline - time.monotonic()))
        if any(run.is_alive() for run in runs):
            _log.warning(
                "shutdown: a capture batch still running after %.0f s is left to its lease",
                settings.shutdown_seconds,
            )
        platform.engine.dispose()
