"""The ingestion overview of the operations console: how each change-capture source and each
feed is doing, from what the platform keeps already.

- Change capture, across processes: each source's lease (`capture_leases`: who holds it, until
  when, when it last stored a position) or, for a capture without a lease, its stored position
  (`cdc_positions`).
- Change capture, as this process measured it: the lag of the last batch and the changes read
  per minute over the last hour (the alarm monitor's snapshots of the metrics).
- Feeds: messages accepted, accepted with a warning, and refused since this process started (the
  `jetbridge_ingest_messages` counter), and the warnings and refusals every process logged in the
  last hour (`ingest_errors`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from jetbridge.ops import metrics
from jetbridge.ops.monitor import AlarmMonitor
from jetbridge.storage.schema import capture_leases, cdc_positions, ingest_errors

HOUR = 3600.0
OUTCOMES = ("accepted", "warned", "refused")


def overview(conn: Connection, monitor: AlarmMonitor | None, *, now: float) -> dict[str, Any]:
    """Every capture source and feed, sorted by name."""
    return {
        "measured_at": now,
        "sources": _sources(conn, monitor, now),
        "feeds": _feeds(conn, now),
    }


def _sources(conn: Connection, monitor: AlarmMonitor | None, now: float) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for row in conn.execute(select(cdc_positions.c.source, cdc_positions.c.updated_at)):
        found[row.source] = _source(row.source, now, position_at=row.updated_at)
    for lease in conn.execute(select(capture_leases)):
        held = lease.lease_until > now
        found[lease.source] = _source(
            lease.source,
            now,
            position_at=lease.updated_at,
            holder=lease.holder if held else None,
            lease_until=lease.lease_until if held else None,
        )
    lags = {
        labels["source"]: value
        for name, labels, value in metrics.samples("jetbridge_capture_lag_seconds")
        if name == "jetbridge_capture_lag_seconds"
    }
    rates = monitor.capture_rates(since=now - HOUR) if monitor is not None else {}
    for name in set(lags) | set(rates):
        source = found.setdefault(name, _source(name, now, position_at=None))
        source["lag_seconds"] = lags.get(name)
        points = rates.get(name, [])
        source["changes_per_minute"] = [[at, round(value, 3)] for at, value in points]
        if points:
            source["changes_per_minute_now"] = round(points[-1][1], 3)
    return [found[name] for name in sorted(found)]


def _source(
    name: str,
    now: float,
    *,
    position_at: float | None,
    holder: str | None = None,
    lease_until: float | None = None,
) -> dict[str, Any]:
    return {
        "source": name,
        # Who captures it now (a host and process id); None when no capturer holds the lease.
        "holder": holder,
        "lease_until": lease_until,
        "position_at": position_at,
        "position_age_seconds": None if position_at is None else max(0.0, now - position_at),
        # Measured by this process only while it captures the source.
        "lag_seconds": None,
        "changes_per_minute": [],
        "changes_per_minute_now": None,
    }


def _feeds(conn: Connection, now: float) -> list[dict[str, Any]]:
    counts: dict[str, dict[str, Any]] = {}

    def feed(name: str) -> dict[str, Any]:
        return counts.setdefault(
            name,
            {
                "feed": name,
                **dict.fromkeys(OUTCOMES, 0),
                "warnings_last_hour": 0,
                "refusals_last_hour": 0,
            },
        )

    for name, labels, value in metrics.samples("jetbridge_ingest_messages_total"):
        if name == "jetbridge_ingest_messages_total" and labels.get("outcome") in OUTCOMES:
            feed(labels["feed"])[labels["outcome"]] += int(value)
    logged = conn.execute(
        select(ingest_errors.c.source, ingest_errors.c.level, func.count())
        .where(ingest_errors.c.received_at >= now - HOUR)
        .group_by(ingest_errors.c.source, ingest_errors.c.level)
    )
    for source, level, count in logged:
        kind = "warnings_last_hour" if level == "warning" else "refusals_last_hour"
        feed(str(source))[kind] += int(count)
    return [counts[name] for name in sorted(counts)]
