"""Scheduled rules fire once per due time, survive restarts and never fire twice across workers."""

from __future__ import annotations

import json
import time

from sqlalchemy import select

from jetbridge.app import build_platform
from jetbridge.config import Settings
from jetbridge.events import registry
from jetbridge.events.scheduler import fire_due_schedules
from jetbridge.events.specs import RuleSpec
from jetbridge.storage.schema import deliveries, events
from support.handlers import HANDLERS


def test_rate_rule_fires_a_scheduled_event_once_per_period(database_url: str) -> None:
    platform = build_platform(
        Settings(database_url=database_url, run_workers=False), handlers=HANDLERS
    )
    platform.prepare()
    spec = RuleSpec.model_validate(
        {
            "name": "every-minute",
            "schedule_expression": "rate(1 minute)",
            "targets": [{"id": "t", "kind": "python", "handler": "record"}],
        }
    )
    with platform.backbone.transaction() as conn:
        created = registry.put_rule(
            conn, bus="default", spec=spec, handlers=platform.backbone.handlers
        )
    assert created["schedule_expression"] == "rate(1 minute)"
    publisher = platform.backbone.publisher
    start = time.time()
    assert fire_due_schedules(platform.engine, publisher, now=start + 30) == 0
    assert fire_due_schedules(platform.engine, publisher, now=start + 61) == 1
    assert fire_due_schedules(platform.engine, publisher, now=start + 62) == 0
    # Ten minutes of downtime: one catch-up event, not ten.
    assert fire_due_schedules(platform.engine, publisher, now=start + 661) == 1
    with platform.engine.connect() as conn:
        bodies = [json.loads(b) for b in conn.execute(select(events.c.body)).scalars()]
        queued = conn.execute(select(deliveries.c.rule)).scalars().all()
    assert [b["type"] for b in bodies] == ["Scheduled Event", "Scheduled Event"]
    assert all(b["source"] == "aws.events" for b in bodies)
    assert bodies[0]["resources"] == ["arn:aws:events:local-1:000000000000:rule/every-minute"]
    assert queued == ["every-minute", "every-minute"]
    platform.engine.dispose()


def test_disabled_schedule_does_not_fire(sqlite_url: str) -> None:
    platform = build_platform(Settings(database_url=sqlite_url, run_workers=False))
    platform.prepare()
    spec = RuleSpec.model_validate(
        {"name": "nightly", "schedule_expression": "cron(0 3 * * ? *)", "state": "DISABLED"}
    )
    with platform.backbone.transaction() as conn:
        registry.put_rule(conn, bus="default", spec=spec, handlers=platform.backbone.handlers)
    assert (
        fire_due_schedules(
            platform.engine, platform.backbone.publisher, now=time.time() + 2 * 86400
        )
        == 0
    )
    platform.engine.dispose()
