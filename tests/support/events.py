"""Rules and events the delivery tests set up the same way."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from jetbridge.events import registry
from jetbridge.events.specs import RuleSpec

if TYPE_CHECKING:
    from jetbridge.app import Platform


def put_rule(platform: Platform, rule: dict[str, Any], *, bus: str = "default") -> None:
    """Stores `rule` (a rule's JSON as callers send it) on `bus`, checked against the
    platform's handlers."""
    spec = RuleSpec.model_validate(rule)
    with platform.backbone.transaction() as conn:
        registry.put_rule(conn, bus=bus, spec=spec, handlers=platform.backbone.handlers)


def keyed_entries(
    source: str, keys: Sequence[str | None], *, first: int = 0
) -> list[dict[str, Any]]:
    """Event n (ids ev-<n> from `first`) on partition key keys[n], none where the key is None."""
    entries = []
    for n, key in enumerate(keys, start=first):
        entry: dict[str, Any] = {
            "specversion": "1.0",
            "id": f"ev-{n}",
            "source": source,
            "type": "t",
            "data": {"n": n, "key": key},
        }
        if key is not None:
            entry["partitionkey"] = key
        entries.append(entry)
    return entries


def put_in_batches(platform: Platform, entries: list[dict[str, Any]], size: int = 50) -> None:
    """Puts `entries` in order, `size` to a request, as one writer would."""
    for first in range(0, len(entries), size):
        platform.backbone.put_events(bus="default", entries=entries[first : first + size])


async def until(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Waits for `check` to hold, polling; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        await asyncio.sleep(0.1)
