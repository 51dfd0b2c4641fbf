"""The delivery worker: leases due deliveries, invokes targets, retries with backoff, dead-letters.

At least once: a delivery row is removed only after its target succeeded, and a lease that a
crashed worker held expires, so another worker (or the restarted one) picks it up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opentelemetry.trace import SpanKind
from sqlalchemy import Connection, Engine

from jetbridge.events.envelope import CloudEvent, cloud_event_from_json, eventbridge_view
from jetbridge.events.log import Delivery, SqlEventLog, TargetKey
from jetbridge.events.publish import Publisher
from jetbridge.events.registry import rule_arn
from jetbridge.events.routing import RouteTarget, Routing, RoutingCache
from jetbridge.events.targets import DeliveryContext, DeliveryFailed, TargetInvoker
from jetbridge.loops import MAX_BACKOFF, interpreter_exiting
from jetbridge.ops import metrics, tracing
from jetbridge.ops.logs import CORRELATION
from jetbridge.storage.transient import (
    Outage,
    backoff,
    is_transient,
    reason_of,
    retry_transient,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryTiming:
    base_seconds: float = 1.0
    max_backoff_seconds: float = 300.0

    def delay(self, failures: int, rng: random.Random) -> float:
        """Exponential backoff with equal jitter: half fixed, half random."""
        ceiling = min(self.max_backoff_seconds, self.base_seconds * 2.0 ** max(failures - 1, 0))
        return float(ceiling / 2 + rng.uniform(0, ceiling / 2))


@dataclass(slots=True)
class DeliveryWorker:
    engine: Engine
    queue: SqlEventLog
    routing: RoutingCache
    publisher: Publisher
    invoker: TargetInvoker
    account: str
    region: str
    timing: RetryTiming = field(default_factory=RetryTiming)
    batch: int = 64
    concurrency: int = 32
    # Most slots one target may hold (0: all); the rest stay free for the other targets.
    per_target: int = 0
    lease_seconds: float = 30.0
    poll_seconds: float = 0.2
    rng: random.Random = field(default_factory=random.Random)
    stats: Counter[str] = field(default_factory=Counter)
    _wakeup: asyncio.Event | None = None
    # A delivery handed over by a commit of this process finished: its slot is free.
    _freed: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _running: bool = False
    # The slots taken, by target: deliveries running and slots reserved for hand-overs (any
    # thread reserves, under `_slots`), plus those set aside for the claim being made.
    _slots: threading.Lock = field(default_factory=threading.Lock)
    _held: Counter[TargetKey] = field(default_factory=Counter)
    _claiming: int = 0
    _inflight: dict[asyncio.Task[None], TargetKey] = field(default_factory=dict)
    # Deliveries done and waiting to be removed from the queue, with who waits for that.
    _done: list[tuple[Delivery, asyncio.Future[None]]] = field(default_factory=list)
    _flusher: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Tell the worker new deliveries may be due; callable from any thread."""
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wakeup.set)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop`: claim whenever a slot is free rather than batch by batch, so a
        slow target holds only its own deliveries' slots, never a whole batch; and one target
        holds at most `per_target` of the slots, so a slow one cannot take them all."""
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._freed = asyncio.Event()
        inflight = self._inflight
        outage = Outage("delivery worker", log)
        self._running = True
        try:
            expected = False
            while not stop.is_set():
                # Cleared before looking for work: a wake-up during the claim is not lost.
                expected = expected or self._wakeup.is_set()
                self._wakeup.clear()
                self._freed.clear()
                started = 0
                if self._free() > 0:
                    try:
                        started = await self._start_more(expected)
                        outage.succeeded()
                    except Exception as exc:
                        if interpreter_exiting(exc):
                            return
                        await self._back_off(outage.failed(exc), stop)
                        continue
                # After a full claim more may be due; after an empty one only a signal says so.
                expected = started > 0
                if started and self._free() > 0:
                    continue
                waiters: list[asyncio.Future[Any]] = [
                    asyncio.ensure_future(self._wakeup.wait()),
                    asyncio.ensure_future(self._freed.wait()),
                    asyncio.ensure_future(stop.wait()),
                ]
                await asyncio.wait(
                    [*waiters, *inflight],
                    timeout=self.poll_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for waiter in waiters:
                    waiter.cancel()
        finally:
            self._running = False
            if inflight:  # let what was started finish, as a batch did before
                await asyncio.gather(*inflight, return_exceptions=True)

    def _free(self) -> int:
        with self._slots:
            return self._free_held()

    def _free_held(self) -> int:
        """Slots neither running, reserved nor set aside for a claim; under `_slots`."""
        return self.concurrency - self._claiming - sum(self._held.values())

    async def _start_more(self, expected: bool = False) -> int:
        """Claim for the free slots, skipping targets at their share, and start each one;
        `expected` when a commit has signalled deliveries (the claim need not look first)."""
        share = self.per_target or self.concurrency
        with self._slots:
            counts = self._held
            full = {key for key, count in counts.items() if count >= share}
            # No claimed batch may take a target past its share, whichever target it holds.
            room = share - max((c for key, c in counts.items() if key not in full), default=0)
            limit = min(self.batch, self._free_held(), room)
            if limit <= 0:
                return 0
            self._claiming += limit  # not reserved for hand-overs while the claim runs
        claimed: list[Delivery] = []
        try:
            claimed, routes = await asyncio.to_thread(self._claim, limit, full, expected)
        finally:
            with self._slots:
                self._claiming -= limit
                for delivery in claimed:
                    self._held[_target_key(delivery)] += 1
        self.stats["claimed"] += len(claimed)
        for delivery in claimed:
            self._start(delivery, routes[delivery.bus])
        return len(claimed)

    def _start(self, delivery: Delivery, routing: Routing) -> None:
        """Run one delivery whose slot is held; the slot is given back when it ends."""
        key = _target_key(delivery)
        task = asyncio.create_task(self._deliver(delivery, routing))
        self._inflight[task] = key
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        key = self._inflight.pop(task, None)
        if key is not None:
            self._give_back([key])
        if self._freed is not None:
            self._freed.set()

    def _give_back(self, keys: Collection[TargetKey]) -> None:
        with self._slots:
            for key in keys:
                self._held[key] -= 1
                if self._held[key] <= 0:
                    del self._held[key]

    def handover(self) -> Handover | None:
        """A `Handover` for one transaction of this process, or None when the worker is not
        running here or its queue cannot lease as it enqueues."""
        if not self._running or not self.queue.hands_over:
            return None
        return Handover(self)

    def reserve(self, key: TargetKey) -> bool:
        """Hold a slot for a delivery to `key` that a transaction of this process is about to
        enqueue already leased to this worker (`Handover`); callable from any thread. False
        when the worker is not running, or the target or the worker has no slot free."""
        share = self.per_target or self.concurrency
        with self._slots:
            if not self._running or self._held[key] >= share or self._free_held() <= 0:
                return False
            self._held[key] += 1
            return True

    def unreserve(self, keys: Collection[TargetKey]) -> None:
        """Give back slots reserved for deliveries that were not handed over after all."""
        if keys:
            self._give_back(keys)

    def take_over(self, taken: Sequence[Delivery], routes: Mapping[str, Routing]) -> None:
        """Start deliveries a committed transaction of this process leased to this worker in
        their slots reserved; callable from any thread. If the worker has stopped meanwhile,
        they are handed back to the queue for the next worker."""
        loop = self._loop
        if taken and loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._take_over, list(taken), dict(routes))
                return
            except RuntimeError:  # the loop closed just now
                pass
        for delivery in taken:
            with contextlib.suppress(Exception):
                self.queue.release(delivery)
        self.unreserve([_target_key(delivery) for delivery in taken])

    def _take_over(self, taken: list[Delivery], routes: dict[str, Routing]) -> None:
        for delivery in taken:
            self.stats["handed_over"] += 1
            self._start(delivery, routes[delivery.bus])

    async def _back_off(self, failures: int, stop: asyncio.Event) -> None:
        """After a failed claim wait longer each time in a row (a busy database passes)."""
        pause = max(self.poll_seconds, backoff(failures, ceiling=MAX_BACKOFF))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=pause)

    async def run_once(self) -> int:
        """Claim one batch of due deliveries and deliver them concurrently."""
        claimed, routes = await asyncio.to_thread(self._claim)
        if not claimed:
            return 0
        gate = asyncio.Semaphore(self.concurrency)

        async def one(delivery: Delivery) -> None:
            async with gate:
                await self._deliver(delivery, routes[delivery.bus])

        await asyncio.gather(*(one(delivery) for delivery in claimed))
        return len(claimed)

    def _claim(
        self, limit: int | None = None, skip: Collection[TargetKey] = (), expected: bool = False
    ) -> tuple[list[Delivery], dict[str, Routing]]:
        routes: dict[str, Routing] = {}

        def read_routing(conn: Connection, claimed: list[Delivery]) -> None:
            for bus in {delivery.bus for delivery in claimed}:
                routes[bus] = self.routing.get(conn, bus)

        claimed = self.queue.claim(
            limit=limit or self.batch,
            lease_seconds=self.lease_seconds,
            now=time.time(),
            skip=skip,
            expected=expected,
            reading=read_routing,
        )
        return claimed, routes

    async def _deliver(self, delivery: Delivery, routing: Routing) -> None:
        target = routing.target(delivery.rule, delivery.target_id)
        if target is None:
            log.warning("dropping delivery %s: target no longer exists", delivery.id)
            await asyncio.to_thread(
                retry_transient, lambda: self.queue.drop(delivery), what="dropping a delivery"
            )
            self.stats["dropped"] += 1
            metrics.EVENTS_DROPPED.labels(*_target_key(delivery)).inc()
            return
        try:
            await self.invoke(delivery, target)
        except asyncio.CancelledError:
            # Shutting down past its bound: hand the delivery back for the next worker now
            # rather than when its lease would expire. It was not completed, so it is redone.
            with contextlib.suppress(Exception):
                self.queue.release(delivery)
            raise
        except DeliveryFailed as exc:
            await asyncio.to_thread(self._failed, delivery, target, str(exc), exc.retryable)
            return
        except Exception as exc:
            # A busy or lost database passes: the delivery is tried again with backoff.
            error = f"{type(exc).__name__}: {exc}"
            try:
                await asyncio.to_thread(self._failed, delivery, target, error, is_transient(exc))
            except Exception as lost:
                if not is_transient(lost):
                    raise
                # The database is away: the claim's lease runs out and the delivery is claimed
                # again once it answers (at least once, never lost).
                log.debug("delivery %s is left to its lease: %s", delivery.id, reason_of(lost))
            return
        self.stats["delivered"] += 1
        metrics.EVENTS_DELIVERED.labels(*_target_key(delivery)).inc()
        metrics.DELIVERY_LATENCY.labels(delivery.bus).observe(
            max(0.0, time.time() - delivery.created_at)
        )

    async def invoke(self, delivery: Delivery, target: RouteTarget, *, queued: bool = True) -> None:
        """Deliver to `target`; raises DeliveryFailed (or another error) if it did not take it.
        A `queued` delivery (the database's queue) is completed with its effect."""
        event = cloud_event_from_json(delivery.body)
        CORRELATION.set(event.id)
        attributes = {
            "messaging.destination.name": delivery.bus,
            "jetbridge.rule": delivery.rule,
            "jetbridge.target": delivery.target_id,
            "jetbridge.target.kind": target.spec.kind,
            "jetbridge.attempt": delivery.attempts + 1,
            "messaging.message.id": event.id,
        }
        with tracing.span(
            f"deliver {delivery.rule}/{delivery.target_id}",
            traceparent=event.traceparent,
            kind=SpanKind.PRODUCER,
            attributes=attributes,
        ):
            await self._invoke_traced(delivery, target, event, queued)

    async def _invoke_traced(
        self, delivery: Delivery, target: RouteTarget, event: CloudEvent, queued: bool
    ) -> None:
        spec = target.spec
        if spec.kind == "bus":
            await asyncio.to_thread(self._forward, delivery, spec.bus or "", event, queued)
            return
        view = eventbridge_view(event, account=self.account, region=self.region)
        payload = view
        if target.shaper is not None:
            payload = target.shaper.shape(
                view,
                rule_name=delivery.rule,
                rule_arn=rule_arn(
                    region=self.region, account=self.account, bus=delivery.bus, rule=delivery.rule
                ),
                ingestion_time=datetime.fromtimestamp(delivery.created_at, UTC).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
            )
        context = DeliveryContext(
            event_id=event.id,
            bus=delivery.bus,
            rule=delivery.rule,
            target_id=delivery.target_id,
            attempt=delivery.attempts + 1,
            event=view,
        )
        await self.invoker.invoke(spec, payload, context)
        if queued:
            await self._completed(delivery)

    async def _completed(self, delivery: Delivery) -> None:
        """Remove a done delivery from the queue. Deliveries finishing while a removal is
        being written are removed together in the next transaction (a group commit): a burst
        of deliveries waits once for the database's writer, not once per delivery."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._done.append((delivery, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_done())
        await done

    async def _flush_done(self) -> None:
        while self._done:
            batch, self._done = self._done, []
            try:
                await asyncio.to_thread(self._complete, [delivery for delivery, _ in batch])
            except Exception as exc:  # each delivery's own handling decides what follows
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            except asyncio.CancelledError:
                # Shutting down: nobody is left waiting forever; uncompleted ones are redone.
                for _, done in [*batch, *self._done]:
                    done.cancel()
                self._done = []
                raise
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    def _complete(self, batch: list[Delivery]) -> None:
        def complete() -> None:
            with self.engine.begin() as conn:
                for delivery in batch:
                    self.queue.complete(conn, delivery)

        what = (
            f"completing delivery {batch[0].id}"
            if len(batch) == 1
            else f"completing {len(batch)} deliveries from {batch[0].id}"
        )
        retry_transient(complete, what=what)

    def _forward(self, delivery: Delivery, bus: str, event: CloudEvent, queued: bool) -> None:
        def forward() -> None:
            with self.engine.begin() as conn:
                self.publisher.publish(conn, bus=bus, events=[event])
                if queued:
                    self.queue.complete(conn, delivery)

        try:
            retry_transient(forward, what=f"forwarding delivery {delivery.id} to bus {bus!r}")
        except LookupError as exc:
            raise DeliveryFailed(str(exc), retryable=True) from None
        self.wake()

    def _failed(self, delivery: Delivery, target: RouteTarget, error: str, retryable: bool) -> None:
        retry_transient(
            lambda: self._settle(delivery, target, error, retryable),
            what=f"recording the failure of delivery {delivery.id}",
        )

    def outcome(
        self, delivery: Delivery, target: RouteTarget, retryable: bool, now: float
    ) -> Outcome:
        """What follows a failed attempt, by the target's retry policy; counted and logged."""
        outcome = decide(delivery, target, retryable, now, self.timing, self.rng)
        if outcome.retry_in is not None:
            self.stats["retried"] += 1
            metrics.EVENTS_RETRIED.labels(*_target_key(delivery)).inc()
            return outcome
        log.warning(
            "delivery %s to %s/%s failed (%s)",
            delivery.id,
            delivery.rule,
            delivery.target_id,
            outcome.reason,
        )
        if outcome.dead_letter:
            self.stats["dead_lettered"] += 1
            metrics.EVENTS_DEAD_LETTERED.labels(*_target_key(delivery)).inc()
        else:
            self.stats["dropped"] += 1
            metrics.EVENTS_DROPPED.labels(*_target_key(delivery)).inc()
        return outcome

    def _settle(self, delivery: Delivery, target: RouteTarget, error: str, retryable: bool) -> None:
        now = time.time()
        outcome = self.outcome(delivery, target, retryable, now)
        if outcome.retry_in is not None:
            self.queue.retry(delivery, error=error, at=now + outcome.retry_in)
        elif outcome.dead_letter:
            self.queue.dead_letter(delivery, error=f"{error} ({outcome.reason})", now=now)
        else:
            self.queue.drop(delivery)


@dataclass(slots=True)
class Handover:
    """The deliveries one transaction of this process enqueues already leased to this
    process's delivery worker, started the moment it commits: no claim, no wait for the
    worker's next look. A delivery is handed over only while the worker has a slot for it
    (reserved here) and only as the first of its lane; the rest are queued as usual. After
    the commit call `committed`; if the transaction did not commit, `rolled_back`."""

    worker: DeliveryWorker
    taken: list[Delivery] = field(default_factory=list)
    routes: dict[str, Routing] = field(default_factory=dict)
    reserved: list[TargetKey] = field(default_factory=list)
    # Deliveries enqueued without being handed over: the worker must be told of them.
    left: int = 0

    @property
    def lease_seconds(self) -> float:
        return self.worker.lease_seconds

    def reserve(self, target: TargetKey) -> bool:
        if not self.worker.reserve(target):
            return False
        self.reserved.append(target)
        return True

    def add(self, delivery: Delivery, routing: Routing) -> None:
        self.taken.append(delivery)
        self.routes[delivery.bus] = routing

    def committed(self) -> None:
        """Start what was handed over; slots reserved for nothing are given back."""
        surplus = Counter(self.reserved)
        surplus.subtract(_target_key(delivery) for delivery in self.taken)
        self.worker.unreserve(list(surplus.elements()))
        self.worker.take_over(self.taken, self.routes)
        self.reserved, self.taken = [], []

    def rolled_back(self) -> None:
        """Nothing was written: every slot reserved is given back."""
        self.worker.unreserve(self.reserved)
        self.reserved, self.taken, self.left = [], [], 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """After a failed attempt: try again in `retry_in` seconds, or give up for `reason`
    (into the dead-letter queue if the target keeps one)."""

    retry_in: float | None
    reason: str = ""
    dead_letter: bool = False


def decide(
    delivery: Delivery,
    target: RouteTarget,
    retryable: bool,
    now: float,
    timing: RetryTiming,
    rng: random.Random,
) -> Outcome:
    """The target's retry policy (MaximumRetryAttempts, MaximumEventAgeInSeconds) applied to
    a delivery that has just failed its attempt number `delivery.attempts + 1`."""
    failures = delivery.attempts + 1
    policy = target.spec.retry_policy
    exhausted = failures > policy.maximum_retry_attempts
    too_old = now - delivery.created_at >= policy.maximum_event_age_seconds
    if retryable and not exhausted and not too_old:
        return Outcome(retry_in=timing.delay(failures, rng))
    reason = "not retryable" if not retryable else ("too old" if too_old else "retries exhausted")
    return Outcome(retry_in=None, reason=reason, dead_letter=target.spec.dead_letter)


def _target_key(delivery: Delivery) -> TargetKey:
    """The delivery's target (bus, rule, target id): its slots' key and its metrics' labels."""
    return delivery.bus, delivery.rule, delivery.target_id
