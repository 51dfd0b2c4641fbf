"""Distributed mode: events leave PostgreSQL through a transactional outbox into NATS JetStream.

A transaction appending events also writes one `jetstream_outbox` row per new event (see
`SqlEventLog`), so the event reaches JetStream if and only if it committed. One relay at a time
(a PostgreSQL advisory lock elects it among every process running workers) publishes the rows
and deletes those JetStream acknowledged. One partition key's events go one after another in id
order (the next starts once all of the previous one's messages are acknowledged); different
keys' are in flight at the same time. A key whose publish fails keeps its remaining rows for the
next pass; a relay that dies between the acknowledgement and the delete publishes those events
again after the hand-over. JetStream drops the copies by their `Nats-Msg-Id` (the log position).

The subject scheme, for jetbridge's own processes and external consumers alike:

    <prefix>.events.<bus>.<partition key>     one stream per bus: <prefix>-events-<bus>

An event without a partition key goes to `_`. Tokens are escaped so that any bus name or key is
one subject token: characters other than ASCII letters, digits and `-` become `_` and two hex
digits (`.` is `_2E`, `_` is `_5F`). Messages are CloudEvents JSON (structured mode), with the
headers `Nats-Msg-Id` and `Jetbridge-Seq` (the log position, the same in every stream) and
`Jetbridge-Event-Id`. One flight's events share a partition key, so they are on one subject, in
commit order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, text

from jetbridge.loops import idle
from jetbridge.storage.schema import events, jetstream_outbox
from jetbridge.storage.transient import Outage, backoff

_log = logging.getLogger(__name__)
# Any 64-bit number the platform owns: the relay's PostgreSQL advisory lock.
RELAY_LOCK = 0x6A65_7462_7269_6467 & 0x7FFF_FFFF_FFFF_FFFF
DUPLICATE_WINDOW_SECONDS = 600.0
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


def token(value: str) -> str:
    """`value` as one subject token (and a valid part of a stream name): see the module doc."""
    out = []
    for char in value:
        if char in _SAFE:
            out.append(char)
        else:
            out.extend(f"_{byte:02X}" for byte in char.encode())
    return "".join(out) or "_"


def untoken(value: str) -> str:
    """The name `token` made `value` from."""
    out = bytearray()
    index = 0
    while index < len(value):
        if value[index] == "_" and index + 3 <= len(value) and value != "_":
            out.append(int(value[index + 1 : index + 3], 16))
            index += 3
        else:
            out.extend(value[index].encode())
            index += 1
    return out.decode()


@dataclass(frozen=True, slots=True)
class SubjectScheme:
    """Where a bus's events, their deliveries and the dead letters live in NATS."""

    prefix: str = "jetbridge"
    # Each rule target's deliveries are split by partition key over this many subjects (and
    # durable consumers): one key's events in order, several keys' side by side.
    shards: int = 4

    def subject(self, bus: str, partition_key: str | None) -> str:
        key = "_" if partition_key is None else token(partition_key)
        return f"{self.prefix}.events.{token(bus)}.{key}"

    def bus_subjects(self, bus: str) -> str:
        return f"{self.prefix}.events.{token(bus)}.>"

    def all_events(self) -> str:
        return f"{self.prefix}.events.>"

    def stream(self, bus: str) -> str:
        return f"{self.prefix}-events-{token(bus)}"

    def shard(self, partition_key: str | None, event_id: str) -> int:
        """One partition key's deliveries share a shard; events without one spread out."""
        value = event_id if partition_key is None else partition_key
        return zlib.crc32(value.encode()) % self.shards

    def delivery_subject(self, bus: str, rule: str, target_id: str, shard: int) -> str:
        return f"{self.prefix}.deliver.{token(bus)}.{token(rule)}.{token(target_id)}.{shard}"

    def deliveries_stream(self) -> str:
        return f"{self.prefix}-deliveries"

    def dead_letter_subject(self, bus: str, rule: str, target_id: str) -> str:
        return f"{self.prefix}.dlq.{token(bus)}.{token(rule)}.{token(target_id)}"

    def dead_letter_stream(self) -> str:
        return f"{self.prefix}-dlq"

    def owners_bucket(self) -> str:
        """The key-value bucket of delivery consumer leases (which worker pulls which)."""
        return f"{self.prefix}-delivery-owners"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    seq: int
    bus: str
    event_id: str
    partition_key: str | None
    body: str
    ingested_at: float
    targets: str | None

    def deliveries(self) -> list[tuple[str, str]]:
        """(rule, target id) of each delivery the event carries."""
        return [(rule, target) for rule, target in json.loads(self.targets or "[]")]


def read_outbox(conn: Connection, *, limit: int) -> list[OutboxItem]:
    rows = conn.execute(
        select(
            jetstream_outbox.c.id,
            events.c.seq,
            events.c.bus,
            events.c.event_id,
            events.c.partition_key,
            events.c.body,
            events.c.ingested_at,
            jetstream_outbox.c.targets,
        )
        .join(events, events.c.seq == jetstream_outbox.c.event_seq)
        .order_by(jetstream_outbox.c.id)
        .limit(limit)
    )
    return [OutboxItem(*row) for row in rows]


def outbox_backlog(engine: Engine) -> tuple[int, float | None]:
    """How many events wait in the outbox, and when the oldest of them was put (epoch s)."""
    with engine.connect() as conn:
        waiting, first = conn.execute(
            select(func.count(), func.min(jetstream_outbox.c.id)).select_from(jetstream_outbox)
        ).one()
        if first is None:
            return 0, None
        oldest = conn.execute(
            select(events.c.ingested_at)
            .join(jetstream_outbox, events.c.seq == jetstream_outbox.c.event_seq)
            .where(jetstream_outbox.c.id == first)
        ).scalar_one_or_none()
    return int(waiting), oldest


@dataclass(slots=True)
class JetStreamRelay:
    """Publishes the outbox to JetStream; run by every worker process, active in one at a time."""

    engine: Engine
    nats_url: str
    scheme: SubjectScheme = field(default_factory=SubjectScheme)
    batch: int = 256
    lanes: int = 64  # partition keys published concurrently
    idle_seconds: float = 1.0
    replicas: int = 1
    relayed: int = 0
    _wakeup: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _streams: set[str] = field(default_factory=set)
    _leader: Connection | None = None
    _held: bool = False

    def wake(self) -> None:
        """New outbox rows may have committed; callable from any thread."""
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wakeup.set)

    async def run(self, stop: asyncio.Event) -> None:
        import nats

        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        client = await connect(nats, self.nats_url)
        try:
            try:
                await self._lead(stop, client.jetstream())
            finally:
                await asyncio.to_thread(self._release)
        finally:
            with contextlib.suppress(Exception):
                await client.drain()

    async def _lead(self, stop: asyncio.Event, jetstream: Any) -> None:
        outage = Outage("outbox relay", _log)
        while not stop.is_set():
            assert self._wakeup is not None
            self._wakeup.clear()
            try:
                items = await asyncio.to_thread(self._take)
                if items is None:  # another process's relay leads
                    await idle(stop, None, self.idle_seconds)
                    continue
                moved = await self._relay(jetstream, items)
                outage.succeeded()
            except Exception as exc:  # NATS or the database is away: back off, try again
                self._streams.clear()  # a stream may have been removed meanwhile
                failures = outage.failed(exc, transient=True)
                await idle(stop, None, backoff(failures, ceiling=5.0))
                continue
            if not moved:
                await idle(stop, self._wakeup, self.idle_seconds)

    def _take(self) -> list[OutboxItem] | None:
        """The next batch, or None while another relay holds the lock (taken here when free):
        one relay at a time keeps the outbox's order. The lock lives as long as the leader's
        connection, and the batch is read on that connection, so a lost connection (and
        lock) fails the read; then any relay may take the lock. On SQLite there is one
        process."""
        if self.engine.dialect.name != "postgresql":
            return self._read()
        try:
            if self._leader is None:
                self._leader, self._held = self.engine.connect(), False
            if not self._held:
                taken = self._leader.execute(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": RELAY_LOCK}
                )
                self._held = bool(taken.scalar_one())
            items = read_outbox(self._leader, limit=self.batch) if self._held else None
            self._leader.commit()
        except Exception:
            self._release()
            raise
        return items

    def _release(self) -> None:
        leader, self._leader, self._held = self._leader, None, False
        if leader is not None:
            with contextlib.suppress(Exception):
                leader.invalidate()  # never back to the pool while it may hold the lock
                leader.close()

    async def relay_once(self, jetstream: Any) -> int:
        """Publish one batch of the outbox (whichever relay leads); returns how many events
        were relayed."""
        return await self._relay(jetstream, await asyncio.to_thread(self._read))

    async def _relay(self, jetstream: Any, items: list[OutboxItem]) -> int:
        """Publish `items`, one partition key's events in order, and delete them from the
        outbox. Different keys' events are published concurrently (at most `lanes` keys at a
        time); a key whose publish fails stops for this batch, and its rows stay in the
        outbox for the next pass, while the other keys carry on. The first failure is raised
        once the acknowledged rows are deleted."""
        done: list[int] = []
        failures: list[BaseException] = []
        try:
            await self._prepare_streams(jetstream, items)
            slots = asyncio.Semaphore(self.lanes)

            async def lane(queue: list[OutboxItem]) -> None:
                async with slots:
                    for item in queue:
                        try:
                            await self._publish(jetstream, item)
                        except Exception as exc:  # this key waits for the next pass
                            failures.append(exc)
                            return
                        done.append(item.id)

            await asyncio.gather(*(lane(queue) for queue in by_partition_key(items)))
        finally:
            if done:
                await asyncio.to_thread(self._delete, done)
                self.relayed += len(done)
        if failures:
            raise failures[0]
        return len(done)

    async def _prepare_streams(self, jetstream: Any, items: list[OutboxItem]) -> None:
        for bus in dict.fromkeys(item.bus for item in items):
            await self._ensure_stream(jetstream, bus)
        wanted = self.scheme.deliveries_stream()
        if wanted not in self._streams and any(item.targets for item in items):
            await ensure_work_streams(jetstream, self.scheme, replicas=self.replicas)
            self._streams.add(wanted)

    async def _publish(self, jetstream: Any, item: OutboxItem) -> None:
        """The event's bus message and its delivery messages (different subjects, so they may
        be stored in any order among themselves); returns once JetStream acknowledged all."""
        body = item.body.encode()
        publishes = [
            jetstream.publish(
                self.scheme.subject(item.bus, item.partition_key),
                body,
                headers={
                    "Nats-Msg-Id": str(item.seq),
                    "Jetbridge-Seq": str(item.seq),
                    "Jetbridge-Event-Id": item.event_id,
                    "Content-Type": "application/cloudevents+json",
                },
                timeout=10,
            )
        ]
        shard = self.scheme.shard(item.partition_key, item.event_id)
        for rule, target_id in item.deliveries():
            # A copy sent again after a failure or a relay's crash is dropped by its Nats-Msg-Id.
            publishes.append(
                jetstream.publish(
                    self.scheme.delivery_subject(item.bus, rule, target_id, shard),
                    body,
                    headers=delivery_headers(
                        msg_id=f"{item.seq}:{token(rule)}:{token(target_id)}",
                        seq=item.seq,
                        event_id=item.event_id,
                        since=item.ingested_at,
                    ),
                    timeout=10,
                )
            )
        results = await asyncio.gather(*publishes, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _read(self) -> list[OutboxItem]:
        with self.engine.connect() as conn:
            return read_outbox(conn, limit=self.batch)

    def _delete(self, ids: list[int]) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(jetstream_outbox).where(jetstream_outbox.c.id.in_(ids)))

    async def _ensure_stream(self, jetstream: Any, bus: str) -> None:
        name = self.scheme.stream(bus)
        if name in self._streams:
            return
        await ensure_stream(jetstream, self.scheme, bus, replicas=self.replicas)
        self._streams.add(name)


def by_partition_key(items: list[OutboxItem]) -> list[list[OutboxItem]]:
    """The items grouped by partition key (all keyless items in one group), each in order."""
    groups: dict[str | None, list[OutboxItem]] = {}
    for item in items:
        groups.setdefault(item.partition_key, []).append(item)
    return list(groups.values())


async def ensure_stream(jetstream: Any, scheme: SubjectScheme, bus: str, *, replicas: int) -> None:
    """Create the bus's stream if it does not exist (an existing one is left as it is)."""
    from nats.js.api import StreamConfig
    from nats.js.errors import NotFoundError

    name = scheme.stream(bus)
    try:
        await jetstream.stream_info(name)
    except NotFoundError:
        await jetstream.add_stream(
            StreamConfig(
                name=name,
                subjects=[scheme.bus_subjects(bus)],
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
                num_replicas=replicas,
            )
        )


def delivery_headers(*, msg_id: str, seq: int, event_id: str, since: float) -> dict[str, str]:
    """A delivery message's headers; `Jetbridge-Since` starts the event-age budget."""
    return {
        "Nats-Msg-Id": msg_id,
        "Jetbridge-Seq": str(seq),
        "Jetbridge-Event-Id": event_id,
        "Jetbridge-Since": repr(since),
        "Content-Type": "application/cloudevents+json",
    }


async def ensure_work_streams(jetstream: Any, scheme: SubjectScheme, *, replicas: int) -> None:
    """The deliveries stream (work queue: a message leaves once acknowledged) and the
    dead-letter stream (kept until redriven or discarded)."""
    from nats.js.api import RetentionPolicy, StreamConfig
    from nats.js.errors import NotFoundError

    wanted = [
        (scheme.deliveries_stream(), f"{scheme.prefix}.deliver.>", RetentionPolicy.WORK_QUEUE),
        (scheme.dead_letter_stream(), f"{scheme.prefix}.dlq.>", RetentionPolicy.LIMITS),
    ]
    for name, subjects, retention in wanted:
        try:
            await jetstream.stream_info(name)
        except NotFoundError:
            config = StreamConfig(
                name=name,
                subjects=[subjects],
                retention=retention,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
                num_replicas=replicas,
            )
            try:
                await jetstream.add_stream(config)
            except Exception:
                await jetstream.stream_info(name)  # another process made it meanwhile


async def connect(nats: Any, url: str, **callbacks: Callable[..., Any]) -> Any:
    """A client that reconnects for ever (a NATS outage is waited out, not fatal), retrying
    the first connection too."""
    outage = Outage("connecting to NATS", _log)
    callbacks = {**callbacks, **_quiet(callbacks.get("reconnected_cb"))}
    while True:
        try:
            client = await nats.connect(
                servers=url.split(","),
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                connect_timeout=5,
                allow_reconnect=True,
                **callbacks,
            )
        except Exception as exc:
            await asyncio.sleep(backoff(outage.failed(exc, transient=True), ceiling=5.0))
            continue
        outage.succeeded()
        return client


def _quiet(reconnected: Callable[..., Any] | None) -> dict[str, Callable[..., Any]]:
    """A connection's errors while it reconnects (every half second during an outage): one
    line when the trouble starts and one when the connection is back, not a line each."""
    link = Outage("NATS connection", _log)

    async def error_cb(error: Exception) -> None:
        link.failed(error, transient=True)

    async def reconnected_cb() -> None:
        link.succeeded()
        if reconnected is not None:
            await reconnected()

    return {"error_cb": error_cb, "reconnected_cb": reconnected_cb}


class NatsWakeups:
    """An API process's push path: every event message on the platform's subjects (core NATS,
    no consumer state) wakes the process's live readers; a reconnect wakes them once too.
    Unless `subscribe`, it only keeps the connection the readiness check asks through."""

    def __init__(
        self,
        nats_url: str,
        scheme: SubjectScheme,
        on_commit: Callable[[], None],
        *,
        subscribe: bool = True,
    ) -> None:
        self.nats_url = nats_url
        self.scheme = scheme
        self.on_commit = on_commit
        self.subscribe = subscribe
        self.listening = False
        self.received = 0
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def unready(self, timeout: float = 3.0) -> str | None:
        """Why NATS cannot take work now (None: connected, and JetStream answers); call from
        any thread but the event loop's own."""
        loop, client = self._loop, self._client
        if loop is None or client is None:
            return "NATS is not connected yet"
        if not client.is_connected:
            return "NATS is not connected (reconnecting)"
        asking = client.jetstream(timeout=timeout).account_info()
        try:
            asyncio.run_coroutine_threadsafe(asking, loop).result(timeout + 1)
        except Exception as exc:
            return f"JetStream does not answer ({type(exc).__name__})"
        return None

    async def run(self, stop: asyncio.Event) -> None:
        import nats

        async def on_message(_message: Any) -> None:
            self.received += 1
            self.on_commit()

        async def reconnected() -> None:
            if self.subscribe:
                self.listening = True
                self.on_commit()

        async def disconnected() -> None:
            self.listening = False

        client = await connect(
            nats, self.nats_url, reconnected_cb=reconnected, disconnected_cb=disconnected
        )
        self._client, self._loop = client, asyncio.get_running_loop()
        try:
            if self.subscribe:
                await client.subscribe(self.scheme.all_events(), cb=on_message)
                await client.flush()
                self.listening = True
                self.on_commit()
            await stop.wait()
        finally:
            self.listening = False
            self._client = None
            with contextlib.suppress(Exception):
                await client.drain()
