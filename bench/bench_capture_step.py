"""CPU and wall time of one distributed capture step: logical decoding into the hub on
PostgreSQL with the JetStream outbox, as `jetbridge up --role capture` runs it.

`python bench/bench_capture_step.py [--batches 60] [--per 20]`: the AODB commits `--per` gate
changes (one transaction each, as at 1,000 updates/s between two 20 ms reads), then the capture
reads and applies them; repeated `--batches` times. Prints the capture thread's CPU per change
and the wall time per step. PostgreSQL as `bench_fids_latency.py` finds it (wal_level=logical);
the platform database has the outbox (a NATS URL is configured, nothing is published to it).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import bindparam, update

from bench_fids_latency import day_plan, fresh_database, logical_postgres
from jetbridge.aodb.cdc import DEFAULT_MAPPING, TableMapping
from jetbridge.aodb.pg_logical import PgLogicalCapture
from jetbridge.aodb.simulator import AodbSimulator, movements
from jetbridge.aodb.sources import LogicalSource
from jetbridge.app import build_platform
from jetbridge.config import Settings
from jetbridge.flights.cdc_runner import CdcRunner
from jetbridge.flights.hub import FlightHub
from jetbridge.ops.crypto import DataKey
from jetbridge.storage.db import create_database_engine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--per", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("JETBRIDGE_DATA_KEYS", DataKey.generate("bench").entry())
    server = logical_postgres()
    legacy = create_database_engine(fresh_database(server))
    AodbSimulator(legacy, day_plan(), speed=1e9).install()
    platform = build_platform(
        Settings(
            database_url=fresh_database(server),
            nats_url="nats://127.0.0.1:4222",
            nats_prefix=f"step{uuid.uuid4().hex[:8]}",
            run_workers=False,
            data_dir=Path(tempfile.mkdtemp(prefix="jetbridge-step-")),
        )
    )
    platform.prepare()
    mapping = TableMapping.load(DEFAULT_MAPPING)
    capture = PgLogicalCapture(legacy, mapping, slot=f"jb_step_{uuid.uuid4().hex[:8]}")
    runner = CdcRunner(LogicalSource(capture), FlightHub(platform.backbone))
    departures = [m.mvt_id for m in day_plan().movements if m.departure == "ZRH"]
    statement = (
        update(movements)
        .where(bindparam("mvt") == movements.c.MVT_ID)
        .values(GATE=bindparam("gate"), LAST_UPD=bindparam("at"), ROW_VER=movements.c.ROW_VER + 1)
    )
    written = 0

    def write(count: int) -> None:
        nonlocal written
        with legacy.connect() as conn:
            for _ in range(count):
                at = datetime.now(UTC).replace(tzinfo=None)
                mvt = departures[written % len(departures)]
                conn.execute(statement, {"mvt": mvt, "gate": f"G{written:05d}", "at": at})
                conn.commit()
                written += 1

    write(args.per)
    runner.step()  # the flights exist and the statements are prepared
    gc.freeze()
    cpu, wall, seen = [], [], 0
    for _ in range(args.batches):
        write(args.per)
        cpu_start, wall_start = time.thread_time(), time.perf_counter()
        got = 0
        while got < args.per:
            got += runner.step()
        cpu.append(time.thread_time() - cpu_start)
        wall.append(time.perf_counter() - wall_start)
        seen += got
    capture.drop()
    wall.sort()
    print(
        f"{seen} changes: capture CPU {1000 * sum(cpu) / seen:.2f} ms per change; per step of"
        f" {args.per}: CPU p50 {1000 * statistics.median(cpu):.1f} ms, wall p50"
        f" {1000 * statistics.median(wall):.1f} ms, p99 {1000 * wall[int(0.99 * len(wall)) - 1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
