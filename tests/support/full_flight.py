"""A jetbridge process for crash tests of a full flight's disruption, run as a subprocess:

    python tests/support/full_flight.py DATABASE_URL SMTP_URL DATA_KEYS DAY cancel|serve

`cancel` imports the demo schedule for DAY, seeds 300 bookings on LX0110 (ZRH-JFK) and cancels
it in the hub; `serve` only runs the platform's workers. Either prints one line when done and
then runs until its standard input closes (or it is killed). Leases are short, so that a
process started after one was killed takes over its work within seconds.

In the `cancel` phase the process stops half-way on purpose, for the test to kill it there:
once the first transaction recording notices has committed it prints `notices recorded`, and
every later attempt to record notices waits (inside its transaction) for the kill. The test
then kills a process with work left whatever the machine's speed, rather than racing a poll
of the database against the process's next transactions.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))

from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.config import Settings
from jetbridge.disruption.notices import Notice, Notices
from jetbridge.events.backbone import Backbone
from support.passengers import cancel, seed

PASSENGERS = 300
HELD = "notices recorded"


def hold_after_the_first_notices() -> None:
    """Once a transaction that recorded notices has committed, print `HELD`; from then on
    every attempt to record notices waits for ever (the process is to be killed)."""
    recording = threading.local()
    held = threading.Event()
    issue_many = Notices.issue_many
    transaction = Backbone.transaction

    def issuing(self: Notices, conn: Any, notices: Sequence[Notice]) -> list[str]:
        if held.is_set():
            threading.Event().wait()  # never set: the kill ends this
        recording.notices = True
        return issue_many(self, conn, notices)

    @contextmanager
    def transacting(self: Backbone) -> Iterator[Any]:
        recording.notices = False
        with transaction(self) as conn:
            yield conn
        if recording.notices and not held.is_set():  # committed
            held.set()
            print(HELD, flush=True)

    Notices.issue_many = issuing  # type: ignore[method-assign]
    Backbone.transaction = transacting  # type: ignore[method-assign,assignment]


def main() -> None:
    database_url, smtp_url, data_keys, day_text, phase = sys.argv[1:6]
    day = date.fromisoformat(day_text)
    if phase == "cancel":
        hold_after_the_first_notices()
    settings = Settings(
        database_url=database_url,
        smtp_url=smtp_url,
        data_keys=data_keys,
        delivery_poll_seconds=0.05,
        delivery_lease_seconds=3,
        workflow_lease_seconds=3,
        public_url="https://jetbridge.example",
    )
    app = create_app(settings)
    with TestClient(app):
        platform = app.state.platform
        if phase == "cancel":
            with platform.backbone.transaction() as conn:
                import_schedule(conn, demo_schedule(start=day, days=2))
            flight = f"LX0110-{day.isoformat()}"
            seed(platform, flight, PASSENGERS, "pax")
            cancel(platform, flight, day, "ZRH", "JFK")
        print(phase, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
