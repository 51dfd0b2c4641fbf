"""Group commit of concurrent puts: the requests that arrive while one transaction is being
written are written together in the next, each answered once that transaction has committed.

Each request keeps its own outcome: a request that fails (its bus unknown to the caller, a
database error on its rows) is rolled back and refused alone while the others in the
transaction commit. Requests are written in the order they arrived, so
events of one partition keep the order their publishers sent them in. Only one transaction is
written at a time per event loop, in a worker thread: one thread hop per transaction, not one
per request. Within it the events of all its requests are appended together, one statement per
bus (of up to `log.APPEND_ROWS` rows), rather than one per request; only when one request fails is
the transaction written again with a savepoint per request.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from jetbridge.errors import NotFound
from jetbridge.events import registry
from jetbridge.events.envelope import CloudEvent
from jetbridge.events.log import NewDelivery
from jetbridge.events.publish import Published, traced
from jetbridge.events.routing import Routing
from jetbridge.loops import this_loops
from jetbridge.ops import tracing

if TYPE_CHECKING:
    from jetbridge.events.backbone import Backbone
    from jetbridge.events.delivery import Handover

# Whether the caller may publish to a bus owned by this tenant (None: the platform's bus).
MayActFor = Callable[[str | None], bool]
MAX_REQUESTS_PER_COMMIT = 500


@dataclass(slots=True)
class _Request:
    bus: str
    events: Sequence[CloudEvent]
    may_act_for: MayActFor
    context: contextvars.Context
    future: asyncio.Future[list[Published]]


@dataclass(slots=True)
class _Outcome:
    published: list[Published] = field(default_factory=list)
    deliveries: list[NewDelivery] = field(default_factory=list)
    error: Exception | None = None


class _Refused(Exception):
    """One request of a transaction without savepoints failed: the transaction is rolled back."""

    def __init__(self, error: Exception) -> None:
        self.error = error


@dataclass(slots=True)
class _Lookups:
    """What one transaction has read already: bus owners and routing, by bus."""

    owners: dict[str, str | None] = field(default_factory=dict)
    routing: dict[str, Routing] = field(default_factory=dict)


@dataclass(slots=True)
class _Queue:
    """The puts waiting on one event loop, and the task writing them."""

    waiting: list[_Request] = field(default_factory=list)
    writer: asyncio.Task[None] | None = None


@dataclass(slots=True)
class Intake:
    """Concurrent puts, written one transaction at a time per event loop."""

    backbone: Backbone
    _queues: dict[asyncio.AbstractEventLoop, _Queue] = field(default_factory=dict)
    # Transactions written so far: fewer than the requests when concurrent puts were grouped.
    commits: int = 0

    async def put(
        self, *, bus: str, events: Sequence[CloudEvent], may_act_for: MayActFor
    ) -> list[Published]:
        """Publish `events` (already validated) on `bus` atomically if `may_act_for` allows the
        bus's owner (NotFound otherwise, as for a bus that does not exist); returns once the
        transaction holding them has committed."""
        loop = asyncio.get_running_loop()
        queue = this_loops(self._queues, _Queue)
        future: asyncio.Future[list[Published]] = loop.create_future()
        queue.waiting.append(_Request(bus, events, may_act_for, contextvars.copy_context(), future))
        if queue.writer is None or queue.writer.done():
            # Its own context: the writer carries no one request's trace or correlation id.
            writing = self._write_waiting(queue)
            queue.writer = loop.create_task(writing, context=contextvars.Context())
        return await future

    async def _write_waiting(self, queue: _Queue) -> None:
        batch: list[_Request] = []
        try:
            while queue.waiting:
                batch = queue.waiting[:MAX_REQUESTS_PER_COMMIT]
                del queue.waiting[:MAX_REQUESTS_PER_COMMIT]
                try:
                    outcomes = await asyncio.to_thread(self._commit, batch)
                except Exception as exc:  # the commit itself failed: nothing of it was written
                    outcomes = [_Outcome(error=exc) for _ in batch]
                for request, outcome in zip(batch, outcomes, strict=True):
                    if request.future.done():  # the client went away
                        continue
                    if outcome.error is not None:
                        request.future.set_exception(outcome.error)
                    else:
                        request.future.set_result(outcome.published)
                batch = []
        finally:
            # Cancelled (the loop is shutting down): whoever still waits hears so.
            for request in [*batch, *queue.waiting]:
                if not request.future.done():
                    request.future.set_exception(RuntimeError("the event intake stopped"))
            queue.waiting.clear()

    def _commit(self, batch: Sequence[_Request]) -> list[_Outcome]:
        """Write `batch` in one transaction. First without savepoints (the common case: every
        request succeeds); if one fails, the transaction is rolled back and written again with
        a savepoint per request, so the failing one is refused alone."""
        try:
            outcomes = self._write(batch, savepoints=False)
        except _Refused as refused:
            if len(batch) == 1:
                return [_Outcome(error=refused.error)]
            outcomes = self._write(batch, savepoints=True)
        for request, outcome in zip(batch, outcomes, strict=True):
            if outcome.error is None:  # committed: count it
                self.backbone.publisher.count(request.bus, outcome.published, outcome.deliveries)
        return outcomes

    def _write(self, batch: Sequence[_Request], *, savepoints: bool) -> list[_Outcome]:
        lookups = _Lookups()
        # Written together, the deliveries this process's worker has room for are handed to
        # it as they are queued (request by request, a refused one would take its share back).
        with (
            self.backbone.handing_over(wanted=not savepoints) as handover,
            self.backbone.engine.begin() as conn,
        ):
            if savepoints:
                outcomes = [self._write_one(conn, request, lookups) for request in batch]
            else:
                outcomes = self._write_together(conn, batch, lookups, handover)
        self.commits += 1
        # The delivery worker is woken only when a target is waiting that was not handed to
        # it: puts matching no rule cost it no claim.
        waiting = any(outcome.deliveries for outcome in outcomes)
        self.backbone.notify(deliveries=waiting and (handover is None or handover.left > 0))
        return outcomes

    def _write_together(
        self,
        conn: Connection,
        batch: Sequence[_Request],
        lookups: _Lookups,
        handover: Handover | None = None,
    ) -> list[_Outcome]:
        """All of `batch` in one append per bus, in arrival order; any failure refuses the
        transaction (`_Refused`), to be written again request by request."""
        by_bus: dict[str, list[CloudEvent]] = {}
        try:
            for request in batch:
                events = request.context.run(self._prepare, conn, request, lookups)
                by_bus.setdefault(request.bus, []).extend(events)
            appended = {
                bus: self.backbone.publisher.append_routed(
                    conn, bus=bus, events=events, routing=lookups.routing[bus], handover=handover
                )
                for bus, events in by_bus.items()
            }
        except Exception as exc:
            raise _Refused(exc) from exc
        return _shares(batch, appended)

    def _write_one(self, conn: Connection, request: _Request, lookups: _Lookups) -> _Outcome:
        """One request under a savepoint of its own: refused alone if it fails."""
        savepoint = conn.begin_nested()
        try:
            events = request.context.run(self._prepare, conn, request, lookups)
            published, deliveries = self.backbone.publisher.append_routed(
                conn, bus=request.bus, events=events, routing=lookups.routing[request.bus]
            )
        except Exception as exc:
            savepoint.rollback()
            return _Outcome(error=exc)
        savepoint.commit()
        return _Outcome(published, deliveries)

    def _prepare(self, conn: Connection, request: _Request, lookups: _Lookups) -> list[CloudEvent]:
        """Check the caller may publish on the request's bus (NotFound otherwise), look up its
        routing once per transaction, and mark the events with the request's trace."""
        bus = request.bus
        with tracing.span(f"publish {bus}", attributes={"messaging.destination.name": bus}):
            if bus not in lookups.owners:
                lookups.owners[bus] = registry.bus_owner(conn, name=bus)
            if not request.may_act_for(lookups.owners[bus]):
                raise NotFound(f"event bus {bus!r} does not exist")
            if bus not in lookups.routing:
                lookups.routing[bus] = self.backbone.publisher.routing.get(conn, bus)
            return [traced(event) for event in request.events]


def _shares(
    batch: Sequence[_Request], appended: dict[str, tuple[list[Published], list[NewDelivery]]]
) -> list[_Outcome]:
    """Each request's part of what was appended per bus: its events are the next ones of its
    bus, in the order the requests came."""
    deliveries_of: dict[tuple[str, int], list[NewDelivery]] = {}
    for _, deliveries in appended.values():
        for delivery in deliveries:
            deliveries_of.setdefault((delivery.bus, delivery.event_seq), []).append(delivery)
    taken: dict[str, int] = {}
    outcomes = []
    for request in batch:
        start = taken.get(request.bus, 0)
        taken[request.bus] = end = start + len(request.events)
        published = appended[request.bus][0][start:end]
        mine = [
            delivery
            for p in published
            if p.seq is not None
            for delivery in deliveries_of.get((request.bus, p.seq), ())
        ]
        outcomes.append(_Outcome(published, mine))
    return outcomes
