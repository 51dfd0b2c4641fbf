"""A cancelled full flight: every one of its 300 passengers gets exactly one notice with held
offers, counted at a real SMTP server, and no delivery is left behind."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from jetbridge.app import create_app
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.config import Settings
from jetbridge.disruption import store
from jetbridge.notify.subscriptions import NOTIFY_BUS
from jetbridge.storage.schema import deliveries, disruption_notices, seats
from support.passengers import cancel, seed
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
