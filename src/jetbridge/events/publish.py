"""Publishing: append to the log and route to rule targets and archives, in one transaction."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from sqlalchemy import Connection, insert

from jetbridge.events.envelope import CloudEvent, eventbridge_view
from jetbridge.events.log import Delivery, DeliveryQueue, EventLog, LogEntry, NewDelivery
from jetbridge.events.routing import ARCHIVE_KEY, RULE_KEY, Routing, RoutingCache
from jetbridge.ops import metrics, tracing
from jetbridge.storage.schema import archive_events

if TYPE_CHECKING:
    from jetbridge.events.delivery import Handover


@dataclass(frozen=True, slots=True)
class Published:
    """The outcome for one event: its sequence number (None if it was a duplicate)."""

    event_id: str
    seq: int | None
    deliveries: int


@dataclass(slots=True)
class Publisher:
    """Appends and routes events inside the caller's transaction (the transactional outbox)."""

    log: EventLog
    queue: DeliveryQueue
    routing: RoutingCache
    account: str
    region: str
    # Distributed mode keeps archives in the buses' JetStream streams (`replay_jetstream`).
    archive_in_database: bool = True

    def publish(
        self,
        conn: Connection,
        *,
        bus: str,
        events: Sequence[CloudEvent],
        only_rules: Collection[str] | None = None,
        handover: Handover | None = None,
    ) -> list[Published]:
        """Append `events` to `bus` and enqueue a delivery per matching rule target.

        Runs in `conn`'s transaction: the caller's own writes and these events commit together.
        Replayed events are routed (to `only_rules` if given) but never archived again. A
        `handover` takes the deliveries it can over once the caller has committed.
        """
        with tracing.span(f"publish {bus}", attributes={"messaging.destination.name": bus}):
            return self._publish(
                conn, bus, [traced(event) for event in events], only_rules, handover
            )

    def _publish(
        self,
        conn: Connection,
        bus: str,
        events: Sequence[CloudEvent],
        only_rules: Collection[str] | None,
        handover: Handover | None,
    ) -> list[Published]:
        routing = self.routing.get(conn, bus)
        results, new_deliveries = self.append_routed(
            conn, bus=bus, events=events, routing=routing, only_rules=only_rules, handover=handover
        )
        self.count(bus, results, new_deliveries)
        return results

    def append_routed(
        self,
        conn: Connection,
        *,
        bus: str,
        events: Sequence[CloudEvent],
        routing: Routing,
        only_rules: Collection[str] | None = None,
        handover: Handover | None = None,
    ) -> tuple[list[Published], list[NewDelivery]]:
        """Append and enqueue with `routing` already looked up in this transaction; counting
        in the metrics is left to the caller (`count`), who does it once the outcome is known.
        The deliveries the queue leases to `handover` are added to it."""
        now = time.time()
        entries = [self._entry(bus, event) for event in events]
        seqs = self.log.append(conn, entries, now=now)
        results: list[Published] = []
        new_deliveries: list[NewDelivery] = []
        for event, seq in zip(events, seqs, strict=True):
            if seq is None:
                results.append(Published(event.id, None, 0))
                continue
            view = eventbridge_view(event, account=self.account, region=self.region)
            matched = routing.matcher.matches(view)
            count = 0
            for key in sorted(matched):
                if key.startswith(RULE_KEY):
                    rule = key[len(RULE_KEY) :]
                    if rule not in routing.enabled or (only_rules and rule not in only_rules):
                        continue
                    for target_id in routing.targets.get(rule, {}):
                        new_deliveries.append(
                            NewDelivery(seq, bus, rule, target_id, event.partitionkey)
                        )
                        count += 1
                elif key.startswith(ARCHIVE_KEY) and self._archives(event):
                    self._archive(conn, key[len(ARCHIVE_KEY) :], event, now)
            results.append(Published(event.id, seq, count))
        leased = self.queue.enqueue(conn, new_deliveries, now=now, handover=handover)
        if handover is not None:
            bodies = {seq: entry.body for seq, entry in zip(seqs, entries, strict=True)}
            for delivery_id, item in leased:
                handover.add(
                    Delivery(
                        id=delivery_id,
                        event_seq=item.event_seq,
                        bus=item.bus,
                        rule=item.rule,
                        target_id=item.target_id,
                        attempts=0,
                        created_at=now,
                        body=bodies[item.event_seq],
                    ),
                    routing,
                )
            handover.left += len(new_deliveries) - len(leased)
        return results, new_deliveries

    @staticmethod
    def count(bus: str, results: Sequence[Published], deliveries: Sequence[NewDelivery]) -> None:
        """Count appended events and matched targets in the metrics."""
        _count(bus, sum(p.seq is not None for p in results), deliveries)

    def _archives(self, event: CloudEvent) -> bool:
        return self.archive_in_database and not event.replayname

    def deliver_to_rule(self, conn: Connection, *, bus: str, rule: str, event: CloudEvent) -> int:
        """Append `event` and enqueue it for one rule's targets only (scheduled rules)."""
        routing = self.routing.get(conn, bus)
        now = time.time()
        event = traced(event)
        (seq,) = self.log.append(conn, [self._entry(bus, event)], now=now)
        if seq is None:
            return 0
        items = [
            NewDelivery(seq, bus, rule, target_id, event.partitionkey)
            for target_id in routing.targets.get(rule, {})
        ]
        self.queue.enqueue(conn, items, now=now)
        _count(bus, 1, items)
        return len(items)

    def entry(self, bus: str, event: CloudEvent) -> LogEntry:
        """The log entry of `event` on `bus`."""
        return self._entry(bus, event)

    def _entry(self, bus: str, event: CloudEvent) -> LogEntry:
        return LogEntry(
            bus=bus,
            event_id=event.id,
            source=event.source,
            type=event.type,
            tenant=event.tenant or self.account,
            partition_key=event.partitionkey,
            event_time=event.time.timestamp(),
            body=event.to_json(),
            replay_name=event.replayname or "",
        )

    @staticmethod
    def _archive(conn: Connection, archive: str, event: CloudEvent, now: float) -> None:
        conn.execute(
            insert(archive_events).values(
                archive=archive,
                event_time=event.time.timestamp(),
                archived_at=now,
                body=event.to_json(),
            )
        )


def traced(event: CloudEvent) -> CloudEvent:
    """The event carrying the current trace, unless it already carries one."""
    if event.traceparent is not None:
        return event
    traceparent = tracing.current_traceparent()
    return event if traceparent is None else replace(event, traceparent=traceparent)


def _count(bus: str, appended: int, deliveries: Sequence[NewDelivery]) -> None:
    if appended:
        metrics.EVENTS_PUT.labels(bus).inc(appended)
    for item in deliveries:
        metrics.EVENTS_MATCHED.labels(bus, item.rule, item.target_id).inc()
