"""A cancelled full flight: every one of its 300 passengers gets exactly one notice with held
offers, counted at a real SMTP server, and no delivery is left behind; also when the process
doing the work is killed half-way and another one finishes it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from jetbridge.app import create_app
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.config import Settings
from jetbridge.disruption import store
from jetbridge.notify.subscriptions import NOTIFY_BUS
from jetbridge.ops.crypto import DataKey
from jetbridge.storage.schema import deliveries, disruption_cases, disruption_notices, seats
from support.full_flight import HELD
from support.passengers import cancel, seed
from support.processes import process_env
from support.servers import smtp_server

DAY = (datetime.now(UTC) + timedelta(days=25)).date()
FLIGHT = f"LX0110-{DAY.isoformat()}"  # ZRH-JFK, a Boeing 777 of 300 seats and more
PASSENGERS = 300


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_each_of_300_passengers_gets_exactly_one_notice(database_url: str) -> None:
    with smtp_server() as mailbox:
        settings = Settings(
            database_url=database_url,
            smtp_url=mailbox.url,
            delivery_poll_seconds=0.05,
            public_url="https://jetbridge.example",
        )
        app = create_app(settings)
        with TestClient(app):
            platform = app.state.platform
            with platform.backbone.transaction() as conn:
                import_schedule(conn, demo_schedule(start=DAY, days=2))
            addresses = seed(platform, FLIGHT, PASSENGERS, "pax")
            cancel(platform, FLIGHT, DAY, "ZRH", "JFK")

            def everyone() -> bool:
                return {str(m["To"]) for m in list(mailbox.messages)} >= set(addresses)

            wait_for(f"a notice to each of {PASSENGERS} passengers", everyone, timeout=600)

            def drained() -> bool:
                with platform.backbone.reading() as conn:
                    left = conn.execute(
                        select(func.count())
                        .select_from(deliveries)
                        .where(deliveries.c.bus == NOTIFY_BUS)
                    ).scalar_one()
                return left == 0

            wait_for("the notifications bus to deliver everything", drained, timeout=120)
            with platform.backbone.reading() as conn:
                counts = store.case_counts(conn, flight_key=f"{FLIGHT}-ZRH-JFK")
                recorded = conn.execute(
                    select(func.count()).select_from(disruption_notices)
                ).scalar_one()
                held = conn.execute(
                    select(func.count()).select_from(seats).where(seats.c.status == "held")
                ).scalar_one()
    per_address = Counter(str(m["To"]) for m in mailbox.messages)
    assert sorted(per_address) == sorted(addresses)
    assert set(per_address.values()) == {1}, "a passenger got more than one notice"
    assert len({m["Message-ID"] for m in mailbox.messages}) == PASSENGERS
    assert all("We are holding seats for you on:" in _text(m) for m in mailbox.messages)
    assert recorded == PASSENGERS
    assert counts == {
        "affected": PASSENGERS, "notified": PASSENGERS, "waiting": PASSENGERS,
        "rebooked": 0, "refunded": 0,
    }  # fmt: skip
    assert held >= PASSENGERS  # every passenger's offers hold seats (up to three flights each)


def _text(message: Any) -> str:
    return str(message.get_payload(decode=True).decode())


def test_a_process_killed_mid_way_loses_and_repeats_no_notice(
    database_url: str, tmp_path: Path
) -> None:
    """The process holding offers and sending notices is killed (SIGKILL) once the first
    notices are recorded; a new process finishes the work. Every passenger ends with one notice:
    one recorded, one Message-ID at the SMTP server (a message in flight at the kill may
    arrive twice, as the same message), and no seat held twice."""
    keys = DataKey.generate("crash").entry()
    script = Path(__file__).parents[1] / "support" / "full_flight.py"
    engine = create_engine(database_url)
    with smtp_server() as mailbox:

        def start(phase: str) -> subprocess.Popen[str]:
            args = [database_url, mailbox.url, keys, DAY.isoformat(), phase]
            return subprocess.Popen(
                [sys.executable, str(script), *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=(tmp_path / f"{phase}.log").open("w"),
                text=True,
                env=process_env(),
            )

        def recorded_now() -> int:
            with engine.connect() as conn:
                return int(
                    conn.execute(select(func.count()).select_from(disruption_notices)).scalar_one()
                )

        first = start("cancel")
        try:
            # The process says when its first notices are committed, and records no more
            # (full_flight.py): killed there, the rest of the work is left to do.
            assert first.stdout is not None
            while (line := first.stdout.readline()) != f"{HELD}\n":
                assert line, (tmp_path / "cancel.log").read_text()[-3000:]
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
        recorded_at_kill = recorded_now()
        assert 0 < recorded_at_kill < PASSENGERS, "killed half-way"
        second = start("serve")
        try:
            addresses = [f"pax-{n}@passengers.example" for n in range(PASSENGERS)]

            def everyone() -> bool:
                return {str(m["To"]) for m in list(mailbox.messages)} >= set(addresses)

            wait_for(f"a notice to each of {PASSENGERS} passengers", everyone, timeout=600)

            def drained() -> bool:
                with engine.connect() as conn:
                    left = conn.execute(
                        select(func.count())
                        .select_from(deliveries)
                        .where(deliveries.c.bus == NOTIFY_BUS)
                    ).scalar_one()
                return left == 0

            wait_for("the notifications bus to deliver everything", drained, timeout=120)
        finally:
            assert second.stdin is not None
            second.stdin.close()
            second.wait(timeout=60)
    with engine.connect() as conn:
        recorded = conn.execute(select(func.count()).select_from(disruption_notices)).scalar_one()
        offers = conn.execute(
            select(disruption_cases.c.offers).where(disruption_cases.c.status == "waiting")
        ).scalars()
        offered_seats = sum(len(offer["seats"]) for text in offers for offer in json.loads(text))
        held = conn.execute(
            select(func.count()).select_from(seats).where(seats.c.status == "held")
        ).scalar_one()
    engine.dispose()
    ids: dict[str, set[str]] = {}
    for message in mailbox.messages:
        ids.setdefault(str(message["To"]), set()).add(str(message["Message-ID"]))
    assert sorted(ids) == sorted(addresses)
    assert all(len(found) == 1 for found in ids.values()), "a passenger got two notices"
    # At most the notices in flight at the kill: sent, their delivery not yet recorded as done
    # (the worker runs `delivery_concurrency` deliveries at once).
    assert len(mailbox.messages) - PASSENGERS <= Settings().delivery_concurrency
    assert recorded == PASSENGERS
    assert held == offered_seats  # the killed transaction's holds went with it
