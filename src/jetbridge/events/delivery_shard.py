"""One delivery consumer (a rule target's shard) pulled by the worker that holds its lease.

The owner pulls up to `in_flight` messages at a time (the consumer's `max_ack_pending`) and runs
them in lanes, one lane per partition key: different keys' deliveries side by side, one key's in
stream order. A failed attempt is tried again in the lane after the rule's backoff, holding back
only that key; the message is kept meanwhile (in-progress acknowledgements push its deadline
back). Past the retry policy it goes to the dead-letter stream, and is acknowledged.

Order across owners: the owner only takes a message (or extends one) while its lease outlives
the message's acknowledgement deadline, so when the lease lapses every message it held is
already due for redelivery, which JetStream does in stream order before anything newer; on a
clean stop the held messages are handed back (NAKed) in order before the lease is released.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from jetbridge.events.delivery import DeliveryWorker
from jetbridge.events.dlq_jetstream import JetStreamDeadLetters
from jetbridge.events.log import Delivery
from jetbridge.events.routing import RouteTarget, Routing
from jetbridge.events.shard_lease import ShardLease, Share
from jetbridge.events.targets import DeliveryFailed
from jetbridge.loops import idle
from jetbridge.ops import metrics
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
        import hashlib

        joined = "\n".join((self.bus, self.rule, self.target_id, str(self.shard)))
        return "deliver-" + hashlib.sha256(joined.encode()).hexdigest()[:32]


class Interrupted(Exception):
    """A stop, or a lost lease: the lane leaves its message where it is."""


@dataclass(slots=True)
class ShardConsumer:
    """Pulls one consumer while this worker holds its lease (see the module's docstring)."""

    worker: DeliveryWorker
    dead_letters: JetStreamDeadLetters
    jetstream: Any
    stream: str
    key: ConsumerKey
    lease: ShardLease
    # A bus's routing (read with the other consumers' reads of the moment).
    routing_of: Callable[[str], Awaitable[Routing]]
    in_flight: int
    ack_wait: float
    stop: asyncio.Event
    # The target's share of this worker's attempts, shared by its shards: a slow target
    # leaves room (and handler threads) for the others.
    slots: asyncio.Semaphore
    # How many consumers this worker may own; one over its share is handed back.
    share: Share
    # What the owner holds: each lane's messages in stream order, and the lane tasks.
    lanes: dict[str, deque[Any]] = field(default_factory=dict)
    runners: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    held: int = 0
    leaving: bool = False
    routing: Routing | None = None
    room: asyncio.Event = field(default_factory=asyncio.Event)
    lost: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def fetch_seconds(self) -> float:
        return min(1.0, self.ack_wait / 4)

    async def run(self) -> None:
        """Take the lease whenever it is free, own the consumer until stopped or the lease is
        lost, and again."""
        while not self.stop.is_set():
            if self.share.may_take() and await self.lease.acquire():
                self.share.owned += 1
                self.leaving = False
                try:
                    await self._own()
                except Exception as exc:  # NATS went away before anything was pulled
                    log.warning("delivery consumer %s: %s", self.key.durable(), exc)
                    if self.held == 0:
                        await self.lease.release()
                    await self._pause(self.fetch_seconds)
                finally:
                    await self._let_go()
                    if not self.leaving:  # one given up was counted off already
                        self.share.owned -= 1
            else:
                await self._pause(min(self.lease.ttl / 4, 2.0))

    async def _own(self) -> None:
        self.lost.clear()
        subscription = await self.jetstream.pull_subscribe_bind(
            durable=self.key.durable(), stream=self.stream
        )
        helpers = [
            asyncio.create_task(self._renew()),
            asyncio.create_task(self._keep_alive()),
        ]
        try:
            await self._pull(subscription)
            if not self.lost.is_set():
                await self._hand_back()
        finally:
            for helper in helpers:
                helper.cancel()
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    def _may_take(self, seconds: float) -> bool:
        """The lease outlives a deadline `seconds` away, with a margin."""
        return not self.lost.is_set() and self.lease.remaining() > seconds + self.ack_wait / 4

    async def _pull(self, subscription: Any) -> None:
        import nats.errors

        failures = 0
        while not self._ending():
            if self.share.give_one_up():  # another worker came: it takes this consumer
                self.leaving = True
                return
            if self.held >= self.in_flight or not self._may_take(
                self.ack_wait + self.fetch_seconds
            ):
                self.room.clear()
                await self._pause(self.fetch_seconds, self.room)
                continue
            try:
                # Never cancelled: once it returns no pull request is left at the server.
                messages = await subscription.fetch(
                    self.in_flight - self.held, timeout=self.fetch_seconds
                )
                failures = 0
            except nats.errors.TimeoutError:
                continue
            except Exception as exc:  # NATS is away: wait, the client reconnects
                failures += 1
                log.debug("delivery consumer %s: %s", self.key.durable(), exc)
                await self._pause(backoff(failures, ceiling=5.0))
                continue
            # Read once for each batch (a version check while the rules are unchanged): a
            # target changed a moment ago is what the next batch meets.
            try:
                self.routing = await self.routing_of(self.key.bus)
            except Exception as exc:  # the database is away: the lanes read it again
                log.warning("delivery consumer %s: %s", self.key.durable(), exc)
                self.routing = None
            for message in messages:
                self._admit(message)

    def _admit(self, message: Any) -> None:
        lane = _lane(message)
        queue = self.lanes.setdefault(lane, deque())
        queue.append(message)
        self.held += 1
        if lane not in self.runners:
            self.runners[lane] = asyncio.create_task(self._run_lane(lane, queue))

    async def _run_lane(self, lane: str, queue: deque[Any]) -> None:
        failures = 0
        try:
            while queue and not self._ending():
                try:
                    await self._deliver(queue[0])
                except Interrupted:
                    return
                except Exception as exc:  # the database is away: the same message again
                    failures += 1
                    log.warning("delivery consumer %s: %s", self.key.durable(), exc)
                    await self._pause(backoff(failures, ceiling=5.0), self.lost)
                    continue
                failures = 0
                queue.popleft()
                self.held -= 1
                self.room.set()
        finally:
            # Whatever is left is handed back in order by the stop, or lapses with the lease.
            if not queue:
                self.lanes.pop(lane, None)
            self.runners.pop(lane, None)

    async def _deliver(self, message: Any) -> None:
        try:
            delivery = _delivery(self.key, message)
        except (ValueError, UnicodeDecodeError) as exc:  # not written by the relay
            log.warning("dropping a malformed delivery message on %s: %s", self.key.durable(), exc)
            await _settled(message.ack())
            return
        while True:
            target = await self._target()
            if target is None:
                log.warning("dropping delivery %s: target no longer exists", delivery.id)
                self.worker.stats["dropped"] += 1
                await _settled(message.ack())
                return
            error = await self._attempt(delivery, target)
            if error is None:
                await _settled(message.ack())
                self._count(delivery)
                return
            now = time.time()
            outcome = self.worker.outcome(delivery, target, error[1], now)
            if outcome.retry_in is not None:
                await self._wait_in_lane(outcome.retry_in)
                self.routing = None  # a target fixed meanwhile is what the next attempt meets
                delivery = replace(delivery, attempts=delivery.attempts + 1)
                continue
            if outcome.dead_letter:
                await self._file(delivery, f"{error[0]} ({outcome.reason})", now)
            await _settled(message.ack())
            return

    async def _target(self) -> RouteTarget | None:
        if self.routing is None:
            self.routing = await self.routing_of(self.key.bus)
        return self.routing.target(self.key.rule, self.key.target_id)

    async def _attempt(self, delivery: Delivery, target: RouteTarget) -> tuple[str, bool] | None:
        """None if the target took it, else the error and whether trying again may help."""
        try:
            async with self.slots:
                await self.worker.invoke(delivery, target, queued=False)
        except DeliveryFailed as exc:
            return str(exc), exc.retryable
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}", is_transient(exc)
        return None

    async def _file(self, delivery: Delivery, error: str, now: float) -> None:
        """Into the dead-letter stream; while it cannot be reached, the lane waits."""
        failures = 0
        while True:
            try:
                await self.dead_letters.add(self.jetstream, delivery, error=error, now=now)
                return
            except Exception as exc:
                failures += 1
                log.warning("cannot file dead letter %s: %s", delivery.id, exc)
                await self._wait_in_lane(backoff(failures, ceiling=5.0))

    async def _wait_in_lane(self, seconds: float) -> None:
        """A lane's pause before its next attempt; a stop or a lost lease ends it."""
        await self._pause(seconds, self.lost)
        if self._ending():
            raise Interrupted

    def _ending(self) -> bool:
        return self.stop.is_set() or self.lost.is_set() or self.leaving

    def _count(self, delivery: Delivery) -> None:
        self.worker.stats["delivered"] += 1
        metrics.EVENTS_DELIVERED.labels(self.key.bus, self.key.rule, self.key.target_id).inc()
        metrics.DELIVERY_LATENCY.labels(self.key.bus).observe(
            max(0.0, time.time() - delivery.created_at)
        )

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.lease.ttl / 8)
            try:
                if not await self.lease.renew():
                    break
            except Exception as exc:  # NATS is away: the lease runs on until it lapses
                log.debug("lease of %s not renewed: %s", self.key.durable(), exc)
            if self.lease.remaining() <= 0:
                break
        log.warning("delivery consumer %s: lease lost, letting go", self.key.durable())
        self.lost.set()
        self.room.set()

    async def _keep_alive(self) -> None:
        """Held messages keep their place: their deadlines move with the lease."""
        while True:
            await asyncio.sleep(self.ack_wait / 4)
            if not self._may_take(self.ack_wait):
                continue
            for queue in list(self.lanes.values()):
                for message in list(queue):
                    with contextlib.suppress(Exception):
                        await message.in_progress()

    async def _hand_back(self) -> None:
        """A clean stop (or a consumer given up): running attempts finish, the rest go back to
        the stream in order, and the lease is free at once."""
        await asyncio.gather(*self.runners.values(), return_exceptions=True)
        waiting = sorted(
            (message for queue in self.lanes.values() for message in queue),
            key=lambda message: message.metadata.sequence.stream,
        )
        for message in waiting:
            await _settled(message.nak())
        self.lanes.clear()
        self.held = 0
        await self.lease.release()

    async def _let_go(self) -> None:
        """After a lost lease: nothing held is acknowledged any more (it comes again)."""
        for runner in list(self.runners.values()):
            runner.cancel()
        await asyncio.gather(*self.runners.values(), return_exceptions=True)
        self.runners.clear()
        self.lanes.clear()
        self.held = 0

    async def _pause(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        await idle(self.stop, wake, seconds)


def _lane(message: Any) -> str:
    """The partition key's lane; an event without one (or unreadable) has a lane of its own."""
    with contextlib.suppress(ValueError, UnicodeDecodeError, AttributeError):
        key = json.loads(message.data or b"").get("partitionkey")
        if isinstance(key, str):
            return "k:" + key
    return f"#{message.metadata.sequence.stream}"


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
