"""Delivery in distributed mode: worker processes share durable JetStream consumers.

The outbox relay puts one message per (event, rule target) into the work-queue stream
`<prefix>-deliveries`, on `<prefix>.deliver.<bus>.<rule>.<target>.<shard>`, where the shard is
the event's partition key hashed over `SubjectScheme.shards` (events without a key spread by
id). Each (bus, rule, target, shard) has one durable pull consumer, named `deliver-<hash>`.

- One worker at a time pulls a consumer: the one holding its lease in the
  `<prefix>-delivery-owners` key-value bucket (`shard_lease`); another takes over when that
  worker stops or dies, so the shards spread over the workers.
- The owner holds up to `in_flight` messages (the consumer's `max_ack_pending`) and runs
  different partition keys' deliveries side by side, one key's in order (`delivery_shard`).
- A message is acknowledged only after its target took it (the handler returned, the webhook
  answered 2xx, the forwarded event committed); the messages of a worker that dies come again,
  in stream order, once their acknowledgement deadline (`delivery_lease_seconds`) passed.
- A failed attempt is tried again in the owner after the delay of the target's retry policy
  (exponential backoff with jitter), holding back only its partition key; past
  MaximumRetryAttempts or MaximumEventAgeInSeconds the delivery goes to the dead-letter stream
  (`dlq_jetstream`) or, for a target without one, is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from jetbridge.errors import NotFound
from jetbridge.events.delivery import DeliveryWorker
from jetbridge.events.delivery_shard import ConsumerKey, ShardConsumer
from jetbridge.events.dlq_jetstream import JetStreamDeadLetters
from jetbridge.events.jetstream import SubjectScheme, connect, ensure_work_streams
from jetbridge.events.routing import Routing
from jetbridge.events.shard_lease import (
    ShardLease,
    Share,
    owners_bucket,
    presence_key,
    worker_identity,
)
from jetbridge.storage.lookups import BatchedLookup
from jetbridge.storage.schema import buses
from jetbridge.storage.transient import backoff

log = logging.getLogger(__name__)


@dataclass(slots=True)
class JetStreamDeliveries:
    """Runs a pull loop per rule target and shard in a worker process, consumers following
    the rules as they are added and removed."""

    worker: DeliveryWorker
    nats_url: str
    scheme: SubjectScheme
    dead_letters: JetStreamDeadLetters
    ack_wait_seconds: float = 30.0
    refresh_seconds: float = 2.0
    in_flight: int = 32
    replicas: int = 1
    owner: str = field(default_factory=worker_identity)
    consumers: dict[ConsumerKey, asyncio.Task[None]] = field(default_factory=dict)
    _owners: Any = None
    _slots: dict[tuple[str, str, str], asyncio.Semaphore] = field(default_factory=dict)
    share: Share = field(default_factory=Share)
    _routings: BatchedLookup[str, Routing] = field(init=False)

    def __post_init__(self) -> None:
        self._routings = BatchedLookup(self._read_routings)

    async def run(self, stop: asyncio.Event) -> None:
        import nats

        client = await connect(nats, self.nats_url)
        jetstream = client.jetstream()
        self._owners = None  # bound to this connection when first needed
        failures = 0
        try:
            while not stop.is_set():
                try:
                    await self._follow_rules(jetstream, stop)
                    failures = 0
                except Exception as exc:  # NATS or the database is away: try again
                    failures += 1
                    log.warning("delivery consumers: %s; retrying", exc)
                with contextlib.suppress(TimeoutError):
                    pause = self.refresh_seconds if not failures else backoff(failures, ceiling=5.0)
                    await asyncio.wait_for(stop.wait(), timeout=pause)
        finally:
            if self.consumers:
                await asyncio.gather(*self.consumers.values(), return_exceptions=True)
            self.consumers.clear()
            if self._owners is not None:
                with contextlib.suppress(Exception):
                    await self._owners.delete(presence_key(self.owner))
            with contextlib.suppress(Exception):
                await client.drain()

    async def _follow_rules(self, jetstream: Any, stop: asyncio.Event) -> None:
        wanted = await asyncio.to_thread(self._wanted)
        await ensure_work_streams(jetstream, self.scheme, replicas=self.replicas)
        if self._owners is None:
            self._owners = await owners_bucket(
                jetstream, self.scheme, ttl=self.lease_seconds, replicas=self.replicas
            )
        for key in wanted - self.consumers.keys():
            await self._ensure_consumer(jetstream, key)
            consumer = self._consumer(jetstream, key, stop)
            self.consumers[key] = asyncio.create_task(consumer.run())
        for key in self.consumers.keys() - wanted:
            self.consumers.pop(key).cancel()
            await self._remove_consumer(jetstream, key)
        for key, task in list(self.consumers.items()):
            if task.done():  # ended by an error: started again on the next round
                self.consumers.pop(key)
                if not task.cancelled() and task.exception() is not None:
                    log.warning("delivery consumer %s: %s", key.durable(), task.exception())
        await self.share.count(self._owners, self.owner, len(wanted))

    def _wanted(self) -> set[ConsumerKey]:
        """Every rule target of every bus, times the shards."""
        wanted = set()
        with self.worker.engine.connect() as conn:
            for bus in conn.execute(select(buses.c.name)).scalars():
                routing = self.worker.routing.get(conn, bus)
                for rule, targets in routing.targets.items():
                    for target_id in targets:
                        for shard in range(self.scheme.shards):
                            wanted.add(ConsumerKey(bus, rule, target_id, shard))
        return wanted

    async def _ensure_consumer(self, jetstream: Any, key: ConsumerKey) -> None:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        config = ConsumerConfig(
            durable_name=key.durable(),
            description=f"deliveries of bus {key.bus!r}, rule {key.rule!r}, target "
            f"{key.target_id!r}, shard {key.shard}",
            filter_subject=self.scheme.delivery_subject(
                key.bus, key.rule, key.target_id, key.shard
            ),
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_seconds,
            max_ack_pending=self.in_flight,
            max_deliver=-1,
        )
        try:  # made, or brought to these settings
            await jetstream.add_consumer(self.scheme.deliveries_stream(), config)
        except Exception:
            # Another worker made it meanwhile (or with other settings: it is kept as it is).
            await jetstream.consumer_info(self.scheme.deliveries_stream(), key.durable())

    @property
    def lease_seconds(self) -> float:
        """A consumer's lease outlives the acknowledgement deadline of whatever its owner
        took (see `delivery_shard`)."""
        return 2 * self.ack_wait_seconds

    def _consumer(self, jetstream: Any, key: ConsumerKey, stop: asyncio.Event) -> ShardConsumer:
        lease = ShardLease(self._owners, key.durable(), self.owner, self.lease_seconds)
        target = (key.bus, key.rule, key.target_id)
        if target not in self._slots:
            share = self.worker.per_target or self.worker.concurrency
            self._slots[target] = asyncio.Semaphore(share)
        return ShardConsumer(
            worker=self.worker,
            dead_letters=self.dead_letters,
            jetstream=jetstream,
            stream=self.scheme.deliveries_stream(),
            key=key,
            lease=lease,
            routing_of=self._routing,
            in_flight=self.in_flight,
            ack_wait=self.ack_wait_seconds,
            stop=stop,
            slots=self._slots[target],
            share=self.share,
        )

    async def _routing(self, bus: str) -> Routing:
        """A bus's routing. Every consumer reads it after each batch it pulls (a version check
        while the rules are unchanged); the reads of the moment are made together."""
        routing = await self._routings.get(bus)
        if routing is None:
            raise NotFound(f"event bus {bus!r} does not exist")
        return routing

    def _read_routings(self, names: Sequence[str]) -> dict[str, Routing]:
        found = {}
        with self.worker.engine.connect() as conn:
            for bus in names:
                with contextlib.suppress(NotFound):
                    found[bus] = self.worker.routing.get(conn, bus)
        return found

    async def _remove_consumer(self, jetstream: Any, key: ConsumerKey) -> None:
        """A removed target: its consumer and the deliveries still waiting for it go."""
        from nats.js.errors import NotFoundError

        stream = self.scheme.deliveries_stream()
        with contextlib.suppress(NotFoundError):
            await jetstream.delete_consumer(stream, key.durable())
        subject = self.scheme.delivery_subject(key.bus, key.rule, key.target_id, key.shard)
        await jetstream.purge_stream(stream, subject=subject)
