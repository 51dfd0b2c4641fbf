"""A jetbridge process for crash tests of a full flight's disruption, run as a subprocess:

    python tests/support/full_flight.py DATABASE_URL SMTP_URL DATA_KEYS DAY cancel|serve

`cancel` imports the demo schedule for DAY, seeds 300 bookings on LX0110 (ZRH-JFK) and cancels
it in the hub; `serve` only runs the platform's workers. Either prints one line when done and
then runs until its standard input closes (or it is killed). Leases are short, so that a
process started after one was killed takes over its work within seconds.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.config import Settings
from support.passengers import cancel, seed

PASSENGERS = 300


def main() -> None:
    database_url, smtp_url, data_keys, day_text, phase = sys.argv[1:6]
    day = date.fromisoformat(day_text)
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
