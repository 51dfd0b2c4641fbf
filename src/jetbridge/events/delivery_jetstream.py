"""Delivery in distributed mode: worker processes share durable JetStream consumers.

The outbox relay puts one message per (event, rule target) into the work-queue stream
`<prefix>-deliveries`, on `<prefix>.deliver.<bus>.<rule>.<target>.<shard>`, where the shard is
the event's partition key hashed over `SubjectScheme.shards` (events without a key spread by
id). Each (bus, rule, target, shard) has one durable pull consumer, named `deliver-<hash>`,
that every worker process pulls from: JetStream hands each message to one of them.

- A message is acknowledged only after its target took it (the handler returned, the webhook
  answered 2xx, the forwarded event committed); a worker that dies holding one lets its
  acknowledgement deadline (`delivery_lease_seconds`) pass and JetStream hands it to another.
- A consumer has at most one message unacknowledged (`max_ack_pending=1`), so one partition
  key's events reach their target in order, also across retries; the shards let one target
  receive several keys' events side by side.
- A failed attempt is NAKed with the delay of the target's retry policy (exponential backoff
  with jitter); past MaximumRetryAttempts or MaximumEventAgeInSeconds the delivery goes to the
  dead-letter stream (`dlq_jetstream`) or, for a target without one, is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from jetbridge.events.delivery import DeliveryWorker
from jetbridge.events.dlq_jetstream import JetStreamDeadLetters
from jetbridge.events.jetstream import SubjectScheme, connect, ensure_work_streams
from jetbridge.events.log import Delivery
from jetbridge.events.routing import RouteTarget, Routing
from jetbridge.events.targets import DeliveryFailed
from jetbridge.ops import metrics
from jetbridge.storage.schema import buses
from jetbridge.storage.transient import backoff, is_transient

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConsumerKey:
    bus: str
    rule: str
    target_id: str
    shard: int

    def durable(self) -> str:
        """A consumer name from any bus, rule and target name (the names are in its
        description)."""
        joined = "\n".join((self.bus, self.rule, self.target_id, str(self.shard)))
        return "deliver-" + hashlib.sha256(joined.encode()).hexdigest()[:32]


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
    fetch_seconds: float = 5.0
    replicas: int = 1
    consumers: dict[ConsumerKey, asyncio.Task[None]] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        import nats

        client = await connect(nats, self.nats_url)
        jetstream = client.jetstream()
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
            with contextlib.suppress(Exception):
                await client.drain()

    async def _follow_rules(self, jetstream: Any, stop: asyncio.Event) -> None:
        wanted = await asyncio.to_thread(self._wanted)
        await ensure_work_streams(jetstream, self.scheme, replicas=self.replicas)
        for key in wanted - self.consumers.keys():
            await self._ensure_consumer(jetstream, key)
            self.consumers[key] = asyncio.create_task(self._consume(jetstream, key, stop))
        for key in self.consumers.keys() - wanted:
            self.consumers.pop(key).cancel()
            await self._remove_consumer(jetstream, key)
        for key, task in list(self.consumers.items()):
            if task.done():  # ended by an error: started again on the next round
                self.consumers.pop(key)
                if not task.cancelled() and task.exception() is not None:
                    log.warning("delivery consumer %s: %s", key.durable(), task.exception())

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
            max_ack_pending=1,
            max_deliver=-1,
        )
        try:
            await jetstream.add_consumer(self.scheme.deliveries_stream(), config)
        except Exception:
            # Another worker made it meanwhile (or with other settings: it is kept as it is).
            await jetstream.consumer_info(self.scheme.deliveries_stream(), key.durable())

    async def _remove_consumer(self, jetstream: Any, key: ConsumerKey) -> None:
        """A removed target: its consumer and the deliveries still waiting for it go."""
        from nats.js.errors import NotFoundError

        stream = self.scheme.deliveries_stream()
        with contextlib.suppress(NotFoundError):
            await jetstream.delete_consumer(stream, key.durable())
        subject = self.scheme.delivery_subject(key.bus, key.rule, key.target_id, key.shard)
        await jetstream.purge_stream(stream, subject=subject)

    async def _consume(self, jetstream: Any, key: ConsumerKey, stop: asyncio.Event) -> None:
        import nats.errors

        subscription = await jetstream.pull_subscribe_bind(
            durable=key.durable(), stream=self.scheme.deliveries_stream()
        )
        failures = 0
        try:
            while not stop.is_set():
                fetch = asyncio.ensure_future(subscription.fetch(1, timeout=self.fetch_seconds))
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait([fetch, stopping], return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if not fetch.done():
                    fetch.cancel()
                    return
                try:
                    messages = fetch.result()
                    failures = 0
                except nats.errors.TimeoutError:
                    continue
                except Exception as exc:  # NATS is away: wait, the client reconnects
                    failures += 1
                    log.debug("delivery consumer %s: %s", key.durable(), exc)
                    await asyncio.sleep(backoff(failures, ceiling=5.0))
                    continue
                for message in messages:
                    try:
                        await self._handle(jetstream, key, message)
                    except Exception as exc:  # the database is away: the message comes back
                        log.warning("delivery consumer %s: %s", key.durable(), exc)
                        await _settled(message.nak(delay=1.0))
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _handle(self, jetstream: Any, key: ConsumerKey, message: Any) -> None:
        try:
            delivery = _delivery(key, message)
        except (ValueError, UnicodeDecodeError) as exc:  # not written by the relay
            log.warning("dropping a malformed delivery message on %s: %s", key.durable(), exc)
            await _settled(message.ack_sync())
            return
        # Read for each message (a version check while the rules are unchanged): a target
        # changed a moment ago is what the next delivery meets.
        routing = await asyncio.to_thread(self._routing, key.bus)
        target = routing.target(key.rule, key.target_id)
        if target is None:
            log.warning("dropping delivery %s: target no longer exists", delivery.id)
            await _settled(message.ack_sync())
            self.worker.stats["dropped"] += 1
            return
        working = asyncio.create_task(self._keep_alive(message))
        try:
            await self.worker.invoke(delivery, target, queued=False)
        except DeliveryFailed as exc:
            await self._failed(jetstream, message, delivery, target, str(exc), exc.retryable)
            return
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            await self._failed(jetstream, message, delivery, target, error, is_transient(exc))
            return
        finally:
            working.cancel()
        await _settled(message.ack_sync())
        self.worker.stats["delivered"] += 1
        metrics.EVENTS_DELIVERED.labels(key.bus, key.rule, key.target_id).inc()
        metrics.DELIVERY_LATENCY.labels(key.bus).observe(
            max(0.0, time.time() - delivery.created_at)
        )

    def _routing(self, bus: str) -> Routing:
        with self.worker.engine.connect() as conn:
            return self.worker.routing.get(conn, bus)

    async def _keep_alive(self, message: Any) -> None:
        """A slow target keeps its message: the acknowledgement deadline is pushed back."""
        while True:
            await asyncio.sleep(self.ack_wait_seconds / 3)
            with contextlib.suppress(Exception):
                await message.in_progress()

    async def _failed(
        self,
        jetstream: Any,
        message: Any,
        delivery: Delivery,
        target: RouteTarget,
        error: str,
        retryable: bool,
    ) -> None:
        now = time.time()
        outcome = self.worker.outcome(delivery, target, retryable, now)
        if outcome.retry_in is not None:
            await _settled(message.nak(delay=outcome.retry_in))
            return
        if outcome.dead_letter:
            try:
                await self.dead_letters.add(
                    jetstream, delivery, error=f"{error} ({outcome.reason})", now=now
                )
            except Exception as exc:  # kept in the consumer, filed on its next attempt
                log.warning("cannot file dead letter %s: %s", delivery.id, exc)
                await _settled(message.nak(delay=5.0))
                return
        await _settled(message.ack_sync())


def _delivery(key: ConsumerKey, message: Any) -> Delivery:
    metadata = message.metadata
    headers = message.headers or {}
    return Delivery(
        id=metadata.sequence.stream,
        event_seq=int(headers.get("Jetbridge-Seq", "0")),
        bus=key.bus,
        rule=key.rule,
        target_id=key.target_id,
        attempts=metadata.num_delivered - 1,
        created_at=float(headers.get("Jetbridge-Since", metadata.timestamp.timestamp())),
        body=(message.data or b"").decode(),
    )


async def _settled(answer: Any) -> None:
    """An acknowledgement that cannot reach NATS is not an error here: the message comes
    back after its deadline (at least once), and idempotent handlers skip it."""
    try:
        await answer
    except Exception as exc:
        log.warning("acknowledgement not delivered (%s); the message will come again", exc)
