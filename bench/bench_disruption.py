"""One cancellation of a 300-passenger flight: time from the hub's commit to each passenger's
notice with offers (received by a real SMTP server in a process of its own), p50/p99 and the
last, beside the single-notice baseline measured in the same run (a flight with one booking
cancelled the same way). One platform process with the default workers, on SQLite (the
embedded default) or on a fresh database of a PostgreSQL server.

    python bench/bench_disruption.py [--passengers 300] [--baselines 3]
        [--database sqlite | postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from jetbridge.app import create_app
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.config import Settings
from jetbridge.disruption import store
from jetbridge.ops.crypto import DataKey
from jetbridge.storage.db import normalise_url
from support.passengers import cancel, seed
from support.servers import smtp_server_process

DAY = (datetime.now(UTC) + timedelta(days=30)).date()


class Clock:
    """When each recipient's first message arrived at the SMTP server (the server notes the
    time it accepted each message; read as they come, without rescanning)."""

    def __init__(self, mailbox: Any) -> None:
        self.mailbox = mailbox
        self.arrived: dict[str, float] = {}
        self.seen = 0

    def update(self) -> None:
        count = min(len(self.mailbox.arrivals), len(self.mailbox.messages))
        for index in range(self.seen, count):
            to = str(self.mailbox.messages[index]["To"])
            self.arrived.setdefault(to, self.mailbox.arrivals[index])
        self.seen = count


def offers_held(platform: Any, flight_key: str, count: int) -> float:
    """When every booking's case waits for its passenger (offers held, notice queued)."""
    while True:
        with platform.backbone.reading() as conn:
            counts = store.case_counts(conn, flight_key=flight_key)
        if counts["waiting"] >= count and counts["notified"] >= count:
            return time.time()
        time.sleep(0.05)


def wait_all(clock: Clock, addresses: list[str], timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        clock.update()
        if all(a in clock.arrived for a in addresses):
            return
        time.sleep(0.05)
    missing = [a for a in addresses if a not in clock.arrived]
    raise SystemExit(f"{len(missing)} of {len(addresses)} notices did not arrive")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passengers", type=int, default=300)
    parser.add_argument("--baselines", type=int, default=3)
    parser.add_argument(
        "--database",
        default="sqlite",
        help="sqlite (a new file), or a PostgreSQL server URL: the run creates a database on it",
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    url = database(args.database)
    with smtp_server_process() as mailbox:
        clock = Clock(mailbox)
        settings = Settings(
            database_url=url,
            data_keys=DataKey.generate("bench").entry(),
            smtp_url=mailbox.url,
            delivery_poll_seconds=0.05,
        )
        app = create_app(settings)
        with TestClient(app):
            platform = app.state.platform
            with platform.backbone.transaction() as conn:
                import_schedule(conn, demo_schedule(start=DAY, days=2))
            single = []
            routes = [("0100", "ZRH", "LHR"), ("0120", "ZRH", "CDG"), ("0130", "ZRH", "FRA")]
            for number, origin, destination in routes[: args.baselines]:
                flight_id = f"LX{number}-{DAY.isoformat()}"
                (address,) = seed(platform, flight_id, 1, f"single{number}")
                committed = cancel(platform, flight_id, DAY, origin, destination)
                wait_all(clock, [address], timeout=60)
                single.append(clock.arrived[address] - committed)
            big = f"LX0110-{DAY.isoformat()}"  # ZRH-JFK, a B77W
            addresses = seed(platform, big, args.passengers, "pax")
            committed = cancel(platform, big, DAY, "ZRH", "JFK")
            held = offers_held(platform, f"{big}-ZRH-JFK", len(addresses)) - committed
            wait_all(clock, addresses, timeout=600)
            waits = [clock.arrived[a] - committed for a in addresses]
            with platform.backbone.reading() as conn:
                counts = store.case_counts(conn, flight_key=f"LX0110-{DAY.isoformat()}-ZRH-JFK")
            offered = sum(1 for m in mailbox.messages if "holding seats" in _text(m))
    if args.database != "sqlite":
        drop(args.database, url)
    kind = "SQLite" if args.database == "sqlite" else "PostgreSQL"
    load = ", ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(load_before, os.getloadavg(), strict=True))
    print(f"{kind}; load average (1, 5, 15 min) before/after: {load}")
    print()
    print("| case | notices | p50 s | p99 s | last s |")
    print("|---|---|---|---|---|")
    print(
        f"| baseline: one booking, {len(single)} flights | {len(single)} | "
        f"{statistics.median(single):.2f} | {max(single):.2f} | {max(single):.2f} |"
    )
    print(
        f"| {args.passengers} passengers, one flight | {len(waits)} | {percentile(waits, 0.5):.2f} | "
        f"{percentile(waits, 0.99):.2f} | {max(waits):.2f} |"
    )
    print()
    print(f"cases: {counts}; notices with held offers: {offered} of {len(mailbox.messages)}")
    print(f"all {args.passengers} offers held and notices queued {held:.2f} s after the commit")


def database(where: str) -> str:
    """A new SQLite file, or a new database on the PostgreSQL server `where`."""
    if where == "sqlite":
        directory = Path(tempfile.mkdtemp(prefix="jetbridge-disruption-"))
        return f"sqlite:///{directory / 'jb.db'}"
    server = normalise_url(where)
    name = f"bench_disruption_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def drop(where: str, url: str) -> None:
    """Remove the database the run created on the PostgreSQL server."""
    admin = create_engine(normalise_url(where), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}"'))
    admin.dispose()


def _text(message: Any) -> str:
    return str(message.get_payload(decode=True).decode())


if __name__ == "__main__":
    main()
