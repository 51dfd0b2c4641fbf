"""Distributed Map child executions: seconds until one execution whose Map over N items (a Task
each) has ended, on the durable engine with a few worker threads, for an inline Map (the
baseline: iterations in the parent's own history), a Distributed Map of Standard children
(executions of their own) and one of Express children (in memory).

PostgreSQL: --postgres, on the server JETBRIDGE_BENCH_POSTGRES_URL names (a fresh database each).

    python bench/bench_map_runs.py [--items 200] [--workers 4] [--postgres]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, func, select, text

from jetbridge.storage.db import create_database_engine, normalise_url
from jetbridge.storage.migrate import upgrade
from jetbridge.storage.schema import execution_events, executions
from jetbridge.workflows.engine import WorkflowEngine


def definition(mode: str, concurrency: int) -> dict[str, Any]:
    processor: dict[str, Any] = {
        "StartAt": "Work",
        "States": {"Work": {"Type": "Task", "Resource": "Work", "End": True}},
    }
    if mode != "inline":
        processor["ProcessorConfig"] = {"Mode": "DISTRIBUTED", "ExecutionType": mode}
    map_state = {
        "Type": "Map",
        "MaxConcurrency": concurrency,
        "ItemProcessor": processor,
        "End": True,
    }
    return {"StartAt": "M", "States": {"M": map_state}}


def measure(engine: Engine, mode: str, args: argparse.Namespace) -> tuple[float, int, int]:
    """Seconds to the end, executions and history events stored."""
    workflows = WorkflowEngine(engine, {"Work": lambda item: item + 1}, lease_seconds=60)
    name = f"bench-{mode.lower()}-{uuid.uuid4().hex[:8]}"
    concurrency = 40 if mode == "inline" else 100
    started = time.perf_counter()
    workflows.start(
        name=name, definition=definition(mode, concurrency), input=list(range(args.items))
    )
    done = threading.Event()

    def worker() -> None:
        while not done.is_set():
            if not workflows.run_one():
                time.sleep(0.01)

    threads = [threading.Thread(target=worker) for _ in range(args.workers)]
    for thread in threads:
        thread.start()
    while workflows.describe(name=name)["status"] == "RUNNING":
        time.sleep(0.01)
    seconds = time.perf_counter() - started
    done.set()
    for thread in threads:
        thread.join()
    ended = workflows.describe(name=name)
    assert ended["status"] == "SUCCEEDED", ended
    assert ended["output"] == [item + 1 for item in range(args.items)]
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(executions)).scalar_one()
        events = conn.execute(select(func.count()).select_from(execution_events)).scalar_one()
    return seconds, stored, events


def database(args: argparse.Namespace, folder: Path, mode: str) -> tuple[str, str | None]:
    """The database's URL, and on PostgreSQL the name of the fresh database to drop after."""
    if not args.postgres:
        return f"sqlite:///{folder / f'{mode}.db'}", None
    fresh = f"bench_{uuid.uuid4().hex[:8]}"
    with admin().connect() as conn:
        conn.execute(text(f"CREATE DATABASE {fresh}"))
    return _server().rsplit("/", 1)[0] + f"/{fresh}", fresh


def _server() -> str:
    return normalise_url(os.environ["JETBRIDGE_BENCH_POSTGRES_URL"])


def admin() -> Engine:
    return create_engine(_server(), isolation_level="AUTOCOMMIT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    print(f"| Map over {args.items} items, {args.workers} worker threads | seconds | items/s "
          "| executions stored | history events stored |")  # fmt: skip
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for mode, label in (
            ("inline", "inline Map (baseline)"),
            ("STANDARD", "Distributed, Standard children"),
            ("EXPRESS", "Distributed, Express children"),
        ):
            url, fresh = database(args, Path(folder), mode)
            engine = create_database_engine(url)
            upgrade(engine)
            seconds, stored, events = measure(engine, mode, args)
            engine.dispose()
            if fresh is not None:
                with admin().connect() as conn:
                    conn.execute(text(f"DROP DATABASE {fresh}"))
            rate = args.items / seconds
            print(f"| {label} | {seconds:.2f} | {rate:,.0f} | {stored} | {events} |")


if __name__ == "__main__":
    main()
