"""The event backbone service: one object the API, the CLI and other modules publish through."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from jetbridge.events.delivery import Handover
from jetbridge.events.dlq import DeadLetterQueue, SqlDeadLetters
from jetbridge.events.envelope import CloudEvent, InvalidEvent, cloud_event_from_dict
from jetbridge.events.handlers import HandlerRegistry
from jetbridge.events.intake import Intake
from jetbridge.events.log import SqlEventLog
from jetbridge.events.publish import Published, Publisher
from jetbridge.events.routing import RoutingCache
from jetbridge.jsonlimits import JsonLimits

MAX_BATCH = 100
# Sources only the platform publishes (EventBridge likewise refuses `aws.` sources in PutEvents).
RESERVED_SOURCES = ("jetbridge.", "aws.")


@dataclass(slots=True)
class Backbone:
    """Transactions, publishing and the wake-up signal for the delivery worker."""

    engine: Engine
    log: SqlEventLog
    routing: RoutingCache
    publisher: Publisher
    max_event_bytes: int
    handlers: HandlerRegistry = field(default_factory=HandlerRegistry)
    # Called after every commit (live streams, the outbox relay, the MQTT bridge) ...
    listeners: list[Callable[[], None]] = field(default_factory=list)
    # ... and after the commits that may have enqueued deliveries (the delivery worker).
    delivery_listeners: list[Callable[[], None]] = field(default_factory=list)
    json_limits: JsonLimits = field(default_factory=JsonLimits)
    # This process's delivery worker taking over what a put enqueues, once it commits.
    handovers: Callable[[], Handover | None] = lambda: None
    # The database's table, unless distributed mode puts the letters in a JetStream stream.
    dead_letters: DeadLetterQueue = field(init=False)
    intake: Intake = field(init=False)

    def __post_init__(self) -> None:
        self.dead_letters = SqlDeadLetters(self.engine, self.log, self.notify)
        self.intake = Intake(self)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction; deliveries it enqueued are signalled once it has committed."""
        with self.engine.begin() as conn:
            yield conn
        self.notify()

    @contextmanager
    def handing_over(self, wanted: bool = True) -> Iterator[Handover | None]:
        """A `Handover` for the one transaction written inside this block (None when not
        `wanted` or this process's worker takes none): leaving the block once the transaction
        has committed starts what was handed over; an error gives its slots back."""
        handover = self.handovers() if wanted else None
        try:
            yield handover
        except BaseException:
            if handover is not None:
                handover.rolled_back()
            raise
        if handover is not None:
            handover.committed()

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(readonly=True)
            yield conn

    def notify(self, *, deliveries: bool = True) -> None:
        """A transaction committed; `deliveries` False when it is known to have enqueued none."""
        for listener in self.listeners:
            listener()
        if deliveries:
            for listener in self.delivery_listeners:
                listener()

    def parse_entries(self, entries: Sequence[Any], *, trusted: bool = False) -> list[CloudEvent]:
        """Validate a whole batch first, so a bad entry means nothing of the batch is written.
        Unless `trusted`, an entry claiming one of the platform's sources is refused."""
        if not entries:
            raise InvalidEvent("entries: at least one event is required")
        if len(entries) > MAX_BATCH:
            raise InvalidEvent(
                f"entries: at most {MAX_BATCH} events per request, got {len(entries)}"
            )
        parsed = []
        for index, entry in enumerate(entries):
            try:
                event = cloud_event_from_dict(
                    entry, max_bytes=self.max_event_bytes, limits=self.json_limits
                )
            except InvalidEvent as exc:
                raise InvalidEvent(str(exc), index=index) from None
            if not trusted and event.source.strip().lower().startswith(RESERVED_SOURCES):
                raise InvalidEvent(
                    f"source: {event.source!r} is reserved for the platform's own events "
                    f"(sources starting with {' or '.join(map(repr, RESERVED_SOURCES))})",
                    index=index,
                )
            parsed.append(event)
        return parsed

    def put_events(
        self, *, bus: str, entries: Sequence[Any], trusted: bool = False
    ) -> list[Published]:
        """Validate and publish a batch atomically. Callers' batches are not `trusted`: they
        cannot claim a platform source; the platform's own code publishes with `publish`."""
        events = self.parse_entries(entries, trusted=trusted)
        with self.handing_over() as handover, self.engine.begin() as conn:
            published = self.publisher.publish(conn, bus=bus, events=events, handover=handover)
        self.notify(deliveries=handover is None or handover.left > 0)
        return published

    def publish(
        self, conn: Connection, *, bus: str, events: Sequence[CloudEvent]
    ) -> list[Published]:
        """Publish inside the caller's transaction (outbox): commits or rolls back with it."""
        return self.publisher.publish(conn, bus=bus, events=events)
