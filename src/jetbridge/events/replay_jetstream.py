"""Replays in distributed mode: read from the bus's JetStream stream, its history the archive.

With NATS configured no event is copied into the database's archive tables: a bus's stream
already keeps every event. A replay of an archive reads the archive's bus stream from the
replay's start time (less a margin for clocks) in stream order, keeps the events whose time is
in [start_time, end_time), that match the archive's pattern and are not themselves replays
(nor older than the archive's retention), and publishes them to the bus marked with
`replay-name`, to the replay's rules only if it names some. Its cursor is the stream sequence
of the last message read, committed with the events it sent; it completes when the stream is
read to its end or past `end_time` (plus the margin).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, update

from jetbridge.events.envelope import CloudEvent, cloud_event_from_json, eventbridge_view
from jetbridge.events.jetstream import SubjectScheme, connect
from jetbridge.events.patterns import CompiledPattern, parse_pattern
from jetbridge.events.publish import Publisher
from jetbridge.storage.schema import archives, replays

log = logging.getLogger(__name__)
CLOCK_MARGIN_SECONDS = 300.0
ACTIVE = ("STARTING", "RUNNING")


@dataclass(frozen=True, slots=True)
class StreamMessage:
    seq: int
    stored_at: float
    body: bytes


@dataclass(frozen=True, slots=True)
class ReplayState:
    name: str
    bus: str
    cursor: int
    start_time: float
    end_time: float
    pattern: str | None
    retention_days: int
    rules: list[str] | None


@dataclass(slots=True)
class JetStreamReplays:
    """Advances every unfinished replay a batch at a time (in processes running workers)."""

    engine: Engine
    publisher: Publisher
    nats_url: str
    scheme: SubjectScheme
    notify: Callable[[], None]
    interval: float = 1.0
    batch: int = 500
    replayed: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        import nats

        client = await connect(nats, self.nats_url)
        try:
            while not stop.is_set():
                try:
                    sent = await self.advance(client.jetstream())
                except Exception as exc:  # NATS or the database is away: try again
                    log.warning("replays: %s; retrying", exc)
                    sent = 0
                if sent:
                    self.notify()
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.interval)
        finally:
            with contextlib.suppress(Exception):
                await client.drain()

    async def advance(self, jetstream: Any) -> int:
        """One batch of every unfinished replay; returns how many events were replayed."""
        sent = 0
        for replay in await asyncio.to_thread(self._active):
            messages = await self._read(jetstream, replay)
            sent += await asyncio.to_thread(self._publish, replay, messages)
        self.replayed += sent
        return sent

    def _active(self) -> list[ReplayState]:
        query = (
            select(
                replays.c.name,
                archives.c.bus,
                replays.c.cursor,
                replays.c.start_time,
                replays.c.end_time,
                archives.c.pattern,
                archives.c.retention_days,
                replays.c.rules,
            )
            .join(archives, archives.c.name == replays.c.archive)
            .where(replays.c.state.in_(ACTIVE))
            .order_by(replays.c.created_at)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            ReplayState(*row[:7], rules=json.loads(row.rules) if row.rules else None)
            for row in rows
        ]

    async def _read(self, jetstream: Any, replay: ReplayState) -> list[StreamMessage]:
        """The next batch of the bus's stream after the cursor (or from the start time)."""
        import nats.errors
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        from nats.js.errors import NotFoundError

        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE, inactive_threshold=60.0, mem_storage=True
        )
        if replay.cursor:
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = replay.cursor + 1
        else:
            config.deliver_policy = DeliverPolicy.BY_START_TIME
            since = max(0.0, replay.start_time - CLOCK_MARGIN_SECONDS)
            config.opt_start_time = datetime.fromtimestamp(since, UTC)
        stream = self.scheme.stream(replay.bus)
        try:
            reader = await jetstream.pull_subscribe(
                self.scheme.bus_subjects(replay.bus), stream=stream, config=config
            )
        except NotFoundError:  # nothing was ever published on the bus
            return []
        try:
            found = await reader.fetch(self.batch, timeout=2)
        except nats.errors.TimeoutError:
            found = []
        finally:
            with contextlib.suppress(Exception):
                info = await reader.consumer_info()
                await reader.unsubscribe()
                await jetstream.delete_consumer(stream, info.name)
        return [
            StreamMessage(
                message.metadata.sequence.stream,
                message.metadata.timestamp.timestamp(),
                message.data or b"",
            )
            for message in found
        ]

    def _publish(self, replay: ReplayState, messages: list[StreamMessage]) -> int:
        """Send the batch's chosen events and move the cursor, in one transaction; a batch
        another process sent first (the cursor moved meanwhile) is left alone."""
        ending = replay.end_time + CLOCK_MARGIN_SECONDS
        read = [message for message in messages if message.stored_at < ending]
        finished = len(read) < len(messages) or not messages
        pattern = None if replay.pattern is None else parse_pattern(replay.pattern)
        chosen = [e for message in read if (e := self._chosen(replay, pattern, message))]
        with self.engine.begin() as conn:
            current = conn.execute(
                select(replays.c.state, replays.c.cursor, replays.c.destination_bus)
                .where(replays.c.name == replay.name)
                .with_for_update()
            ).first()
            if current is None or current.state not in ACTIVE or current.cursor != replay.cursor:
                return 0
            if chosen:
                replayed = [event.with_replay(replay.name) for event in chosen]
                self.publisher.publish(
                    conn, bus=current.destination_bus, events=replayed, only_rules=replay.rules
                )
            values: dict[str, Any] = {
                "state": "COMPLETED" if finished else "RUNNING",
                "cursor": read[-1].seq if read else replay.cursor,
                "events_replayed": replays.c.events_replayed + len(chosen),
            }
            if finished:
                values["finished_at"] = time.time()
            conn.execute(update(replays).where(replays.c.name == replay.name).values(**values))
        return len(chosen)

    def _chosen(
        self, replay: ReplayState, pattern: CompiledPattern | None, message: StreamMessage
    ) -> CloudEvent | None:
        """The message's event if the replay sends it."""
        kept_since = time.time() - replay.retention_days * 86400
        if replay.retention_days and message.stored_at < kept_since:
            return None
        try:
            event = cloud_event_from_json(message.body.decode())
        except Exception:  # not an event jetbridge wrote: not part of the archive
            log.warning("replay %s: stream message %d is not an event", replay.name, message.seq)
            return None
        if event.replayname or not replay.start_time <= event.time.timestamp() < replay.end_time:
            return None
        if pattern is not None:
            view = eventbridge_view(
                event, account=self.publisher.account, region=self.publisher.region
            )
            if not pattern.matches(view):
                return None
        return event
