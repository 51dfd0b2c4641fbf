"""The event backbone service: one object the API, the CLI and other modules publish through."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from jetbridge.events.envelope import CloudEvent, InvalidEvent, cloud_event_from_dict
from jetbridge.events.log import SqlEventLog
from jetbridge.events.publish import Published, Publisher
from jetbridge.events.routing import RoutingCache
from jetbridge.jsonlimits import JsonLimits

MAX_BATCH = 100


@dataclass(slots=True)
class Backbone:
    """Transactions, publishing and the wake-up signal for the delivery worker."""

    engine: Engine
    log: SqlEventLog
    routing: RoutingCache
    publisher: Publisher
    max_event_bytes: int
    listeners: list[Callable[[], None]] = field(default_factory=list)
    json_limits: JsonLimits = field(default_factory=JsonLimits)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction; deliveries it enqueued are signalled once it has committed."""
        with self.engine.begin() as conn:
            yield conn
        self.notify()

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(readonly=True)
            yield conn

    def notify(self) -> None:
        for listener in self.listeners:
            listener()

    def parse_entries(self, entries: Sequence[Any]) -> list[CloudEvent]:
        """Validate a whole batch first, so a bad entry means nothing of the batch is written."""
        if not entries:
            raise InvalidEvent("entries: at least one event is required")
        if len(entries) > MAX_BATCH:
            raise InvalidEvent(
                f"entries: at most {MAX_BATCH} events per request, got {len(entries)}"
            )
        parsed = []
        for index, entry in enumerate(entries):
            try:
                parsed.append(
                    cloud_event_from_dict(
                        entry, max_bytes=self.max_event_bytes, limits=self.json_limits
                    )
                )
            except InvalidEvent as exc:
                raise InvalidEvent(str(exc), index=index) from None
        return parsed

    def put_events(self, *, bus: str, entries: Sequence[Any]) -> list[Published]:
        """Validate and publish a batch atomically."""
        events = self.parse_entries(entries)
        with self.transaction() as conn:
            return self.publisher.publish(conn, bus=bus, events=events)

    def publish(
        self, conn: Connection, *, bus: str, events: Sequence[CloudEvent]
    ) -> list[Published]:
        """Publish inside the caller's transaction (outbox): commits or rolls back with it."""
        return self.publisher.publish(conn, bus=bus, events=events)
