"""Scheduled rules, replays and archive retention: the backbone's periodic duties."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, select, update

from jetbridge.events.archive import advance_replays, purge_expired
from jetbridge.events.envelope import CloudEvent
from jetbridge.events.publish import Publisher
from jetbridge.events.registry import rule_arn
from jetbridge.events.schedule import parse_schedule
from jetbridge.loops import MAX_BACKOFF, interpreter_exiting
from jetbridge.storage.schema import rules
from jetbridge.storage.transient import Outage, backoff

log = logging.getLogger(__name__)
MAX_CATCH_UP = 1000


def fire_due_schedules(engine: Engine, publisher: Publisher, *, now: float) -> int:
    """Send one 'Scheduled Event' per rule whose next fire time has passed.

    Missed fire times during downtime are not sent one by one (EventBridge does not catch up);
    the rule fires once and resumes its cadence. The event id derives from the rule and the fire
    time, so two processes firing the same schedule store the event once.
    """
    with engine.connect() as conn:
        conn.execution_options(readonly=True)  # a read: no write lock on SQLite
        due = conn.execute(
            select(rules).where(rules.c.schedule.is_not(None), rules.c.state == "ENABLED")
        ).all()
    fired = 0
    for row in due:
        fire_at = _latest_due(
            row.schedule, anchor=row.created_at, last=row.schedule_last_fired, now=now
        )
        if fire_at is None:
            continue
        with engine.begin() as conn:
            claimed = conn.execute(
                update(rules)
                .where(
                    rules.c.bus == row.bus,
                    rules.c.name == row.name,
                    rules.c.schedule_last_fired.is_(row.schedule_last_fired)
                    if row.schedule_last_fired is None
                    else rules.c.schedule_last_fired == row.schedule_last_fired,
                )
                .values(schedule_last_fired=fire_at)
            )
            if claimed.rowcount == 0:
                continue
            publisher.deliver_to_rule(
                conn,
                bus=row.bus,
                rule=row.name,
                event=_scheduled_event(publisher, row.bus, row.name, fire_at),
            )
            fired += 1
    return fired


def _latest_due(expression: str, *, anchor: float, last: float | None, now: float) -> float | None:
    schedule = parse_schedule(expression)
    start = datetime.fromtimestamp(last if last is not None else anchor, UTC)
    anchor_time = datetime.fromtimestamp(anchor, UTC)
    current = datetime.fromtimestamp(now, UTC)
    latest = None
    for _ in range(MAX_CATCH_UP):
        upcoming = schedule.next_after(start, anchor=anchor_time)
        if upcoming is None or upcoming > current:
            break
        latest = start = upcoming
    return None if latest is None else latest.timestamp()


def _scheduled_event(publisher: Publisher, bus: str, rule: str, fire_at: float) -> CloudEvent:
    arn = rule_arn(region=publisher.region, account=publisher.account, bus=bus, rule=rule)
    return CloudEvent(
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{arn}@{fire_at}")),
        source="aws.events",
        type="Scheduled Event",
        time=datetime.fromtimestamp(fire_at, UTC),
        resources=(arn,),
        data={},
    )


async def run_periodic(
    engine: Engine,
    publisher: Publisher,
    stop: asyncio.Event,
    *,
    notify: Callable[[], None],
    interval: float = 1.0,
    replays: bool = True,
) -> None:
    """Every `interval`: fire schedules, advance replays (unless `replays` run from JetStream
    elsewhere); every ten minutes: purge archives."""
    last_purge = 0.0
    outage = Outage("periodic backbone duties", log)
    while not stop.is_set():
        now = time.time()
        pause = interval
        try:
            fired = await asyncio.to_thread(fire_due_schedules, engine, publisher, now=now)
            replayed = await asyncio.to_thread(advance_replays, engine, publisher) if replays else 0
            if now - last_purge > 600:
                await asyncio.to_thread(_purge, engine, now)
                last_purge = now
            outage.succeeded()
            if fired or replayed:
                notify()
            if replayed:
                continue
        except Exception as exc:
            if interpreter_exiting(exc):
                return
            pause = max(interval, backoff(outage.failed(exc), ceiling=MAX_BACKOFF))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=pause)


def _purge(engine: Engine, now: float) -> None:
    with engine.begin() as conn:
        purge_expired(conn, now=now)
