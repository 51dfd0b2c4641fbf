"""Two `jetbridge capture` processes on one PostgreSQL source: the active one is killed
(SIGKILL) while the source takes 200 changes a second; the other takes over, and every change
reaches the hub exactly once in effect (each legacy row's flight has one version per change)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, bindparam, create_engine, select, text, update

from conftest import fresh_postgres_database
from jetbridge.aodb.legacy import legacy_metadata, movements
from jetbridge.app import build_platform
from jetbridge.config import Settings
from jetbridge.flights.hub import get_flight
from jetbridge.flights.model import FlightIdentity
from jetbridge.storage.db import create_database_engine, normalise_url
from jetbridge.storage.schema import capture_keys, capture_leases, flights

RATE = 200  # changes per second written to the source
FLIGHTS = 20
DAY = "2026-11-24"


def row(key: int) -> dict[str, Any]:
    std = datetime(2026, 11, 24, 6, 0) + timedelta(minutes=5 * key)
    return {
        "MVT_ID": key, "AL_CODE": "LX", "FLT_NO": str(1000 + key), "SCHED_DATE": DAY,
        "DEP_AP": "ZRH", "ARR_AP": "LHR", "FLT_STATUS": "SCH", "STD_UTC": std,
        "LAST_UPD": datetime.now(UTC).replace(tzinfo=None), "ROW_VER": 1,
    }  # fmt: skip


def flight_key(key: int) -> str:
    return FlightIdentity.create(
        airline="LX", flight_number=str(1000 + key), origin_date=DAY,
        departure_airport="ZRH", arrival_airport="LHR",
    ).key  # fmt: skip


class Writer(threading.Thread):
    """Changes the source at RATE a second and counts every change per legacy row (an insert
    counts as the row's first version)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.stop = threading.Event()
        self.writes: Counter[int] = Counter()
        self.deleted: set[int] = set()
        self.next_key = FLIGHTS + 1
        self.count = 0
        self.started_at = self.ended_at = 0.0

    def run(self) -> None:
        self.started_at = time.monotonic()
        while not self.stop.is_set():
            # Whatever is due at RATE goes in one transaction of up to 100 changes, so the rate
            # holds even when commits are slow on a loaded machine.
            due = int((time.monotonic() - self.started_at) * RATE) - self.count
            if due > 0:
                self.write(min(due, 100))
            else:
                self.stop.wait(1 / RATE)  # pacing, not waiting on a result
        self.ended_at = time.monotonic()

    def write(self, changes: int) -> None:
        """`changes` changes in one transaction, sent as one batch of statements."""
        inserts, updates = [], []
        for n in range(self.count, self.count + changes):
            if n % 50 == 49:
                inserts.append(row(self.next_key))
                self.writes[self.next_key] += 1
                self.next_key += 1
            else:
                key = 1 + n % FLIGHTS
                etd = datetime(2026, 11, 24, 6, 0) + timedelta(seconds=n)
                now = datetime.now(UTC).replace(tzinfo=None)
                updates.append({"key": key, "etd": etd, "now": now})
                self.writes[key] += 1
        with self.engine.begin() as conn:
            if inserts:
                conn.execute(movements.insert(), inserts)
            if updates:
                conn.execute(
                    update(movements)
                    .where(movements.c["MVT_ID"] == bindparam("key"))
                    .values(
                        ROW_VER=movements.c.ROW_VER + 1,
                        ETD_UTC=bindparam("etd"),
                        LAST_UPD=bindparam("now"),
                    ),
                    updates,
                )
        self.count += changes


def slot_exists(engine: Engine, slot: str) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_replication_slots WHERE slot_name = :s "
                    "AND confirmed_flush_lsn IS NOT NULL"  # created, not still being created
                ),
                {"s": slot},
            ).scalar()
        )


def wait_for_progress(
    what: str, value: Callable[[], int], target: int, stall: float = 60.0
) -> float:
    """Poll until `value()` reaches `target`; fail only when it stops moving for `stall` s
    (catching up may take long on a loaded machine, but it must keep going)."""
    last, moved_at = value(), time.monotonic()
    while last < target:
        time.sleep(0.05)
        now = value()
        if now != last:
            last, moved_at = now, time.monotonic()
        assert time.monotonic() - moved_at < stall, f"{what}: stuck at {last} of {target}"
    return time.monotonic()


def wait_until(what: str, condition: Callable[[], bool], timeout: float = 120.0) -> float:
    """Poll until `condition` holds (observed progress); the moment it did."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return time.monotonic()


@pytest.mark.timeout(900)  # two processes and a backlog on a machine that may be loaded
def test_a_killed_capturer_is_taken_over_and_no_change_is_lost_or_doubled(
    postgres_url: str, postgres_server_url: str, tmp_path: Path
) -> None:
    platform_url = fresh_postgres_database(postgres_server_url)
    source = create_database_engine(postgres_url)
    legacy_metadata.create_all(source)
    platform = build_platform(Settings(database_url=platform_url, run_workers=False))
    platform.prepare()
    hub = platform.engine
    slot = f"jb_{uuid.uuid4().hex[:8]}"
    settings = tmp_path / "jetbridge.toml"
    settings.write_text(
        '[capture]\nlease_seconds = 2.0\n\n[capture.sources.main]\nkind = "logical"\n'
        f'url = "{postgres_url}"\nslot = "{slot}"\ninterval = 0.05\n'
    )
    env = {**os.environ, "JETBRIDGE_DATABASE_URL": platform_url}
    command = [sys.executable, "-m", "jetbridge.cli", "capture", "--source", "main"]
    logs = [open(tmp_path / f"capturer-{n}.log", "w") for n in range(2)]  # noqa: SIM115
    capturers = [
        subprocess.Popen([*command, "--settings", str(settings)], env=env, stdout=log, stderr=log)
        for log in logs
    ]
    # The writer does not wait for its commits to be flushed, so it keeps its rate on a loaded
    # machine; what it wrote is in the WAL logical decoding reads either way.
    writer = Writer(
        create_engine(
            normalise_url(postgres_url), connect_args={"options": "-c synchronous_commit=off"}
        )
    )

    def lease() -> tuple[str, int]:
        with hub.connect() as conn:
            found = conn.execute(
                select(capture_leases.c.holder, capture_leases.c.generation)
            ).first()
        return ("", 0) if found is None else (str(found.holder), int(found.generation))

    def versions() -> int:
        with hub.connect() as conn:
            return int(sum(conn.execute(select(flights.c.version)).scalars()))

    try:
        # The first capturer to hold the lease opens the slot, then captures the first rows.
        wait_until("a capturer to take the lease", lambda: lease()[1] >= 1)
        wait_until("the replication slot", lambda: slot_exists(source, slot))
        with source.begin() as conn:
            conn.execute(movements.insert(), [row(key) for key in range(1, FLIGHTS + 1)])
        wait_until("the first flights", lambda: versions() == FLIGHTS)
        writer.start()
        wait_until("the active capturer to apply changes", lambda: versions() > FLIGHTS)
        holder, _ = lease()
        active = next(p for p in capturers if f":{p.pid}:" in holder)
        standby = next(p for p in capturers if p is not active)
        before = versions()
        killed_at, written_at_kill = time.monotonic(), writer.count
        os.kill(active.pid, signal.SIGKILL)
        active.wait()
        taken_at = wait_until("the standby to take over", lambda: f":{standby.pid}:" in lease()[0])
        written_at_takeover = writer.count
        resumed: list[float] = []  # when the new holder's first change was seen in the hub

        def resumed_and_written() -> bool:
            if not resumed and versions() > before:
                resumed.append(time.monotonic())
            if writer.count > written_at_takeover + 2 * RATE:
                writer.stop.set()  # two more seconds of changes after the take-over
            return bool(resumed) and writer.stop.is_set()

        wait_until("changes to flow again", resumed_and_written)
        writer.join()
        resumed_at = resumed[0]
        # The source was being written through the kill and the take-over.
        assert written_at_kill < written_at_takeover, (written_at_kill, written_at_takeover)
        with source.begin() as conn:  # deletes cancel their flights (the mapping's default)
            for key in (1, 2):
                conn.execute(movements.delete().where(movements.c["MVT_ID"] == key))
                writer.writes[key] += 1
        expected = sum(writer.writes.values()) + FLIGHTS
        caught_up_at = wait_for_progress("every change in the hub", versions, expected)
        assert lease()[0].startswith(f"{os.uname().nodename}:{standby.pid}:")
        with hub.connect() as conn:
            stored = dict(conn.execute(select(flights.c.flight_key, flights.c.version)).all())
            cancelled = [get_flight(conn, flight_key(key)) for key in (1, 2)]
            keys = conn.execute(select(capture_keys.c.row_key)).scalars().all()
        written = {flight_key(key): 1 + writer.writes[key] for key in range(1, FLIGHTS + 1)}
        written |= {flight_key(key): writer.writes[key] for key in writer.writes if key > FLIGHTS}
        assert stored == written  # exactly once in effect: one version per change, none lost
        assert all(view is not None and view["status"] == "cancelled" for view in cancelled)
        assert len(keys) == len(written)
        rate = writer.count / (writer.ended_at - writer.started_at)
        print(
            f"\nfail-over: {writer.count} changes at {rate:.0f}/s; SIGKILL -> take-over "
            f"{taken_at - killed_at:.2f} s, -> first change applied {resumed_at - killed_at:.2f} s; "
            f"caught up {caught_up_at - killed_at:.2f} s after the kill (lease 2.0 s)"
        )
        assert taken_at - killed_at < 2.0 + 10.0
    finally:
        writer.stop.set()
        for process in capturers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
        for log in logs:
            log.close()
        with source.begin() as conn:
            conn.execute(
                text("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                     "WHERE slot_name = :s"),
                {"s": slot},
            )  # fmt: skip
        source.dispose()
        writer.engine.dispose()
        platform.engine.dispose()
