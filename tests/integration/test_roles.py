"""Process roles: one leader per duty among many processes, and a hand-over when it goes."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from jetbridge.roles import while_leading
from jetbridge.storage.db import create_database_engine
from support import aio


def test_one_capturer_leads_and_another_takes_over_when_its_connection_goes(
    postgres_url: str,
) -> None:
    engines = [create_database_engine(postgres_url) for _ in range(2)]
    leading: list[int] = []
    stints: list[int] = []

    def duty(number: int) -> Any:
        async def work(lost: asyncio.Event) -> None:
            leading.append(number)
            stints.append(number)
            try:
                await lost.wait()
            finally:
                leading.remove(number)

        return work

    async def until(check: Any) -> None:
        for _ in range(3000):
            if check():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"gave up: leading {leading}, stints {stints}")

    async def scenario() -> None:
        stops = [asyncio.Event() for _ in engines]
        runs = [
            asyncio.create_task(
                while_leading(engine, "capture legacy", stops[n], duty(n), check_seconds=0.1)
            )
            for n, engine in enumerate(engines)
        ]
        await until(lambda: len(leading) == 1)
        first = leading[0]
        for _ in range(20):  # never two at once
            await asyncio.sleep(0.02)
            assert leading == [first]

        def cut_the_leader() -> None:
            with engines[1 - first].connect() as conn:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_locks "
                        "WHERE locktype = 'advisory' AND granted "
                        "AND database = (SELECT oid FROM pg_database "
                        "WHERE datname = current_database())"
                    )
                )
                conn.commit()

        stops[first].set()  # its host goes away: the process and its connection with it
        await asyncio.to_thread(cut_the_leader)
        await until(lambda: leading == [1 - first])
        stops[1 - first].set()
        await asyncio.wait_for(asyncio.gather(*runs), 20)
        assert leading == []
        assert stints[:2] == [first, 1 - first]

    try:
        aio.run(scenario())
    finally:
        for engine in engines:
            engine.dispose()


def test_processes_starting_together_on_a_fresh_database_prepare_it_in_turn(
    postgres_url: str,
) -> None:
    """Migrations, the default buses and the platform's rules: each process prepares, none
    fails on another's half-done work (a duplicate rule, a migration applied twice)."""
    import threading

    from jetbridge.app import build_platform
    from jetbridge.config import Settings

    platforms = [
        build_platform(Settings(database_url=postgres_url, run_workers=False)) for _ in range(4)
    ]
    barrier = threading.Barrier(len(platforms))
    failures: list[BaseException] = []

    def prepare(platform: Any) -> None:
        barrier.wait()
        try:
            platform.prepare()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=prepare, args=(p,)) for p in platforms]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with platforms[0].engine.connect() as conn:
        rules = conn.execute(text("SELECT count(*) FROM rules")).scalar_one()
    assert rules >= 1
    for platform in platforms:
        platform.engine.dispose()
