"""Health, readiness, Prometheus metrics, alarms and charted series.

`/metrics` spans every tenant (bus, rule and target names are labels), so it is for the
platform's own operations staff, or for a Prometheus server presenting JETBRIDGE_METRICS_TOKEN.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import HTTPConnection

from jetbridge.api.policy import PLATFORM_OPERATIONS, PlatformOperations, Policy, Public, Require
from jetbridge.errors import InvalidRequest, NotFound
from jetbridge.ops import metrics
from jetbridge.ops.health import run_checks
from jetbridge.ops.identity.principal import Principal
from jetbridge.ops.monitor import SERIES, AlarmMonitor

router = APIRouter(tags=["operations"])
SCRAPER = Principal(subject="metrics-scraper", kind="api_key", roles=frozenset({"service"}))
SCRAPE = Policy(
    "platform-operations",
    PLATFORM_OPERATIONS.roles,
    PLATFORM_OPERATIONS.summary + ", or a scraper sending JETBRIDGE_METRICS_TOKEN",
    platform_only=True,
)


class ScrapeOrOperations(Require):
    """The platform's operations staff, or a bearer token equal to JETBRIDGE_METRICS_TOKEN."""

    def __call__(self, request: HTTPConnection) -> Principal:
        token = request.app.state.platform.settings.metrics_token
        presented = request.headers.get("authorization") or ""
        if token is not None and presented.lower().startswith("bearer "):
            expected = token.get_secret_value().encode()
            if secrets.compare_digest(presented[7:].strip().encode(), expected):
                request.state.policy = self.policy
                return SCRAPER
        return super().__call__(request)


Scraper = Annotated[Principal, Depends(ScrapeOrOperations(SCRAPE))]


@router.get("/healthz")
def healthz(_: Public) -> dict[str, str]:
    """The process is alive and answers."""
    return {"status": "alive"}


@router.get("/readyz", responses={503: {"description": "not ready, with the reasons"}})
async def readyz(request: Request, _: Public) -> JSONResponse:
    """Ready to serve: the database answers, background loops run, change capture polls, and
    with NATS configured: connected, JetStream answering, the outbox not far behind; 503
    "shutting down" once a shutdown signal arrived."""
    platform = request.app.state.platform
    ready, answers = await asyncio.to_thread(run_checks, dict(platform.readiness))
    if platform.draining:
        # Load balancers stop sending here while in-flight work drains (docs/operations.md).
        return JSONResponse({"status": "shutting down", "checks": answers}, status_code=503)
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": answers},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request, _: Scraper) -> Response:
    """The Prometheus text exposition, with the figures read from the database."""
    monitor = _monitor(request)
    extra = metrics.ScrapeFigures(lambda: _database_figures(monitor))
    body = await asyncio.to_thread(metrics.exposition, extra)
    return Response(body, media_type=metrics.CONTENT_TYPE_LATEST)


def _database_figures(monitor: AlarmMonitor) -> dict[tuple[str, str, str], dict[str, float]]:
    figures = monitor.database_figures()
    firing = {alarm["name"]: float(alarm["state"] == "ALARM") for alarm in monitor.states()}
    return {
        ("jetbridge_dlq_depth", "Dead letters waiting, per bus", "bus"): figures[
            "jetbridge_dlq_depth"
        ],
        ("jetbridge_alarm_firing", "1 while a built-in alarm is in ALARM", "alarm"): firing,
    }


@router.get("/api/alarms")
def list_alarms(request: Request, _: PlatformOperations) -> list[dict[str, Any]]:
    """The built-in alarms: threshold, state, why, since when, and the last measured value."""
    return _monitor(request).states()


@router.get("/api/metrics/series")
def metric_series(
    request: Request,
    _: PlatformOperations,
    name: Annotated[str | None, Query(max_length=64)] = None,
    minutes: Annotated[int, Query(ge=1, le=360)] = 60,
) -> dict[str, Any]:
    """Charted figures of this process: without `name` the list of series, with it the points
    ([epoch seconds, value]) of the last `minutes`."""
    monitor = _monitor(request)
    known = {series.name: series for series in SERIES}
    if name is None:
        return {"series": [vars_of(series) for series in SERIES]}
    if name not in known:
        raise InvalidRequest(f"name: no series {name!r}; expected one of {', '.join(known)}")
    points = monitor.series(name, since=time.time() - minutes * 60)
    return {**vars_of(known[name]), "points": [[at, value] for at, value in points]}


def vars_of(series: Any) -> dict[str, str]:
    return {"name": series.name, "unit": series.unit, "description": series.description}


def _monitor(request: Request) -> AlarmMonitor:
    monitor: AlarmMonitor | None = request.app.state.platform.monitor
    if monitor is None:
        raise NotFound("alarms are not enabled on this platform")
    return monitor
