"""The saga worker is killed (SIGKILL) again and again across 200 sagas; after a restart every
saga ends, no payment is captured twice and no seat hold is left behind."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from jetbridge.app import build_platform
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.booking.service import BookingRequest, Passenger
from jetbridge.config import Settings
from jetbridge.payments.test_provider import APPROVE, DECLINE, Ledger, create_test_provider
from jetbridge.storage.schema import executions, seats
from support.servers import serve_app

SAGAS = 200


def test_sagas_survive_repeated_sigkill(sqlite_url: str, tmp_path: Path) -> None:
    day = (datetime.now(UTC) + timedelta(days=40)).date()
    ledger = Ledger()
    rng = random.Random(7)
    with serve_app(create_test_provider(ledger)) as provider_url:
        env = {
            **os.environ,
            "JETBRIDGE_DATABASE_URL": sqlite_url,
            "JETBRIDGE_PAYMENTS_URL": provider_url,
            "JETBRIDGE_WORKFLOW_LEASE_SECONDS": "1",
            "JETBRIDGE_WORKFLOW_WORKERS": "4",
            "PYTHONPATH": str(Path(__file__).parents[1]),
        }
        platform = build_platform(
            Settings(database_url=sqlite_url, payments_url=provider_url, run_workers=False)
        )
        platform.prepare()
        with platform.backbone.transaction() as conn:
            import_schedule(conn, demo_schedule(start=day, days=1))
        for n in range(SAGAS):
            request = BookingRequest(
                flight_id=f"LX{100 + (n % 3):04d}-{day.isoformat()}", cabin="economy", customer_id=f"c{n}",
                passengers=[Passenger(given_name="Pax", family_name=f"N{n}")],
            )  # fmt: skip
            assert platform.bookings is not None
            platform.bookings.create(
                request=request,
                card=DECLINE if n % 10 == 0 else APPROVE,
                caller="crash",
                idempotency_key=f"crash-{n:05d}",
            )
        kills = 0
        running_at_kill: list[int] = []
        deadline = time.time() + 240
        while time.time() < deadline:
            worker = subprocess.Popen(
                [sys.executable, "-m", "jetbridge.cli", "worker"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if kills < 6:
                # Kill mid-work: once this worker has finished some sagas (observed, however
                # long start-up takes on a loaded machine), after a random moment more.
                before = _running(platform)
                while time.time() < deadline and _running(platform) >= before:
                    time.sleep(0.05)
                time.sleep(rng.uniform(0.0, 0.3))
                running_at_kill.append(_running(platform))
                os.kill(worker.pid, signal.SIGKILL)
                worker.wait()
                kills += 1
                continue
            while time.time() < deadline and _running(platform) > 0:
                time.sleep(0.5)
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
            break
        with platform.backbone.reading() as conn:
            states = Counter(conn.execute(select(executions.c.status)).scalars())
            held = conn.execute(select(func.count()).where(seats.c.status == "held")).scalar()
        platform.engine.dispose()
    print("running at each kill:", running_at_kill)
    assert kills == 6
    assert sum(1 for running in running_at_kill if 0 < running < SAGAS) >= 3, running_at_kill
    assert states == {"SUCCEEDED": SAGAS - SAGAS // 10, "FAILED": SAGAS // 10}, states
    assert held == 0
    captures = Counter(
        path.rsplit("/", 2)[1] for path, _ in ledger.calls if path.endswith("/capture")
    )
    keys = Counter(key for path, key in ledger.calls if path.endswith("/capture"))
    assert (
        sum(1 for i in ledger.intents.values() if i["status"] == "succeeded") == SAGAS - SAGAS // 10
    )
    assert all(i["amount_captured"] in {0, i["amount"]} for i in ledger.intents.values())
    assert len(keys) == len(captures)


def _running(platform: object) -> int:
    with platform.backbone.reading() as conn:  # type: ignore[attr-defined]
        return int(
            conn.execute(select(func.count()).where(executions.c.status == "RUNNING")).scalar() or 0
        )
