"""Lookups asked for together are read together: one query for the keys that arrived while the
previous one ran, each caller answered with its own key's value."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from jetbridge.storage.lookups import BatchedLookup
from support import aio


class Table:
    """A fetch whose first query waits until released, so callers pile up behind it."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.queries: list[list[str]] = []
        self.first_running = threading.Event()
        self.release = threading.Event()
        self.fail_on = fail_on

    def fetch(self, keys: Sequence[str]) -> dict[str, str]:
        self.queries.append(list(keys))
        if len(self.queries) == 1:
            self.first_running.set()
            assert self.release.wait(30)
        if self.fail_on in keys:
            raise ConnectionError("the database went away")
        return {key: key.upper() for key in keys if not key.startswith("missing")}


async def pile_up(lookup: BatchedLookup[str, str], table: Table, keys: list[str]) -> list[object]:
    """One lookup starts the first query; `keys` are asked for while it runs."""
    first = asyncio.ensure_future(lookup.get("first"))
    await asyncio.to_thread(table.first_running.wait, 30)
    rest = [asyncio.ensure_future(lookup.get(key)) for key in keys]
    await asyncio.sleep(0)
    table.release.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


def test_lookups_that_wait_together_are_one_query_and_each_gets_its_own_answer() -> None:
    table = Table()
    lookup: BatchedLookup[str, str] = BatchedLookup(table.fetch)
    keys = [f"k{n}" for n in range(20)] + ["k3", "missing-1"]
    answers = aio.run(pile_up(lookup, table, keys))
    assert answers == ["FIRST", *[f"K{n}" for n in range(20)], "K3", None]
    assert lookup.queries == 2
    assert table.queries[1] == [*[f"k{n}" for n in range(20)], "missing-1"]  # k3 read once


def test_a_query_reads_at_most_its_bound_of_keys() -> None:
    table = Table()
    lookup: BatchedLookup[str, str] = BatchedLookup(table.fetch, most=8)
    answers = aio.run(pile_up(lookup, table, [f"k{n}" for n in range(20)]))
    assert answers[1:] == [f"K{n}" for n in range(20)]
    assert [len(keys) for keys in table.queries] == [1, 8, 8, 4]


def test_a_failed_query_fails_its_own_callers_only() -> None:
    table = Table(fail_on="bad")
    lookup: BatchedLookup[str, str] = BatchedLookup(table.fetch, most=3)
    answers = aio.run(pile_up(lookup, table, ["a", "bad", "b", "c", "d"]))
    assert answers[0] == "FIRST"
    assert all(isinstance(answer, ConnectionError) for answer in answers[1:4])
    assert answers[4:] == ["C", "D"]
    assert table.queries[1:] == [["a", "bad", "b"], ["c", "d"]]


def test_lookups_on_different_event_loops_are_read_apart() -> None:
    table = Table()
    table.release.set()
    lookup: BatchedLookup[str, str] = BatchedLookup(table.fetch)
    assert aio.run(lookup.get("x")) == "X"
    assert aio.run(lookup.get("y")) == "Y"  # another loop: the closed one is forgotten
    assert len(lookup._loops) == 1
