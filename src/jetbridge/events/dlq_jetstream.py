"""The dead-letter queue in distributed mode: a JetStream stream, `<prefix>-dlq`.

A delivery whose retries are exhausted (or that is too old, or not retryable) becomes one
message on `<prefix>.dlq.<bus>.<rule>.<target>`, its body a JSON document with the event, the
error, the attempts and the time. A letter's id is its sequence in that stream. Redriving a
letter sends its event again to its own target only (a new message in the deliveries stream,
with a fresh retry budget) and removes the letter; discarding removes it. The same
`jetbridge dlq` commands and `/events/dlq` routes serve both this and the database's queue.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import heapq
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from jetbridge.bounds import checked_id
from jetbridge.errors import NotFound
from jetbridge.events.envelope import cloud_event_from_json
from jetbridge.events.jetstream import (
    SubjectScheme,
    delivery_headers,
    ensure_work_streams,
    token,
    untoken,
)
from jetbridge.events.log import Delivery
from jetbridge.jsonlimits import stored_json

log = logging.getLogger(__name__)
T = TypeVar("T")
_INTERNAL = ("event_seq", "raw_event")


@dataclass(frozen=True, slots=True)
class JetStreamDeadLetters:
    """List, redrive and discard the letters of the dead-letter stream (blocking calls, each
    over a connection of its own); workers add letters with `add`."""

    nats_url: str
    scheme: SubjectScheme
    replicas: int = 1

    async def add(self, jetstream: Any, delivery: Delivery, *, error: str, now: float) -> None:
        """File a failed delivery; a copy filed again after a crash is dropped by its id (the
        delivery message's own sequence)."""
        letter = {
            "bus": delivery.bus,
            "rule": delivery.rule,
            "target_id": delivery.target_id,
            "event_seq": delivery.event_seq,
            "event": delivery.body,
            "error": error[:4000],
            "attempts": delivery.attempts + 1,
            "failed_at": now,
        }
        await jetstream.publish(
            self.scheme.dead_letter_subject(delivery.bus, delivery.rule, delivery.target_id),
            json.dumps(letter).encode(),
            headers={"Nats-Msg-Id": f"dlq:{delivery.id}"},
            timeout=10,
        )

    def list(
        self,
        *,
        bus: str | None = None,
        rule: str | None = None,
        include_redriven: bool = False,
        limit: int = 100,
        after_id: int = 0,
        within: Collection[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Letters oldest first; `within` limits them to those buses (a tenant's). A redriven
        letter has left the stream, so `include_redriven` adds none."""
        checked_id(after_id, "after_id")

        async def listing(jetstream: Any) -> list[dict[str, Any]]:
            found = []
            async for letter in self._letters(jetstream, bus, rule, after_id, within):
                found.append({k: v for k, v in letter.items() if k not in _INTERNAL})
                if len(found) >= limit:
                    break
            return found

        return self._run(listing)

    def redrive(
        self,
        *,
        ids: Sequence[int] | None = None,
        bus: str | None = None,
        rule: str | None = None,
        within: Collection[str] | None = None,
    ) -> int:
        """Deliver letters' events again to their own targets; returns how many."""
        for index, letter in enumerate(ids or ()):
            checked_id(letter, f"ids[{index}]")

        def wanted(letter: dict[str, Any] | None) -> bool:
            return letter is not None and all(
                (
                    bus is None or letter["bus"] == bus,
                    rule is None or letter["rule"] == rule,
                    within is None or letter["bus"] in within,
                )
            )

        async def redriving(jetstream: Any) -> int:
            chosen = []
            if ids is None:
                chosen = [letter async for letter in self._letters(jetstream, bus, rule, 0, within)]
            else:
                for letter_id in sorted(set(ids)):
                    letter = await self._letter(jetstream, letter_id)
                    if letter is not None and wanted(letter):
                        chosen.append(letter)
            if ids is not None and len(chosen) != len(set(ids)):
                missing = sorted(set(ids) - {letter["id"] for letter in chosen})
                raise NotFound(f"dead letter(s) {missing} do not exist or were already redriven")
            await ensure_work_streams(jetstream, self.scheme, replicas=self.replicas)
            for letter in chosen:
                await self._send_again(jetstream, letter)
                await jetstream.delete_msg(self.scheme.dead_letter_stream(), letter["id"])
            return len(chosen)

        return self._run(redriving)

    def discard(self, *, letter_id: int, within: Collection[str] | None = None) -> None:
        checked_id(letter_id, "letter_id")

        async def discarding(jetstream: Any) -> None:
            letter = await self._letter(jetstream, letter_id)
            if letter is None or (within is not None and letter["bus"] not in within):
                raise NotFound(f"dead letter {letter_id} does not exist")
            await jetstream.delete_msg(self.scheme.dead_letter_stream(), letter_id)

        self._run(discarding)

    def depth(self) -> dict[str, int]:
        """Letters waiting, per bus."""

        async def counting(jetstream: Any) -> dict[str, int]:
            info = await jetstream.stream_info(
                self.scheme.dead_letter_stream(), subjects_filter=f"{self.scheme.prefix}.dlq.>"
            )
            depth: dict[str, int] = {}
            for subject, count in (info.state.subjects or {}).items():
                bus = untoken(subject.split(".")[2])
                depth[bus] = depth.get(bus, 0) + int(count)
            return depth

        return self._run(counting)

    def letter(
        self, letter_id: int, *, within: Collection[str] | None = None
    ) -> dict[str, Any] | None:
        """One letter with its event's JSON (`raw_event`), or None if it is not there."""
        checked_id(letter_id, "letter_id")

        async def reading(jetstream: Any) -> dict[str, Any] | None:
            letter = await self._letter(jetstream, letter_id)
            if letter is None or (within is not None and letter["bus"] not in within):
                return None
            return letter

        return self._run(reading)

    def remove(self, letter_id: int) -> None:
        """Remove a letter whose event was sent again by other means (an edited copy)."""

        async def removing(jetstream: Any) -> None:
            from nats.js.errors import NotFoundError

            with contextlib.suppress(NotFoundError):
                await jetstream.delete_msg(self.scheme.dead_letter_stream(), letter_id)

        self._run(removing)

    async def _send_again(self, jetstream: Any, letter: dict[str, Any]) -> None:
        event = cloud_event_from_json(letter["raw_event"])
        shard = self.scheme.shard(event.partitionkey, event.id)
        await jetstream.publish(
            self.scheme.delivery_subject(letter["bus"], letter["rule"], letter["target_id"], shard),
            letter["raw_event"].encode(),
            headers=delivery_headers(
                msg_id=f"redrive:{letter['id']}",
                seq=letter["event_seq"],
                event_id=event.id,
                since=time.time(),
            ),
            timeout=10,
        )

    async def _letters(
        self,
        jetstream: Any,
        bus: str | None,
        rule: str | None,
        after_id: int,
        within: Collection[str] | None,
    ) -> Any:
        """The letters after `after_id` on the subjects of `bus` and `rule` (any if None)."""
        from nats.js.errors import NotFoundError

        subject = ".".join(
            [
                f"{self.scheme.prefix}.dlq",
                "*" if bus is None else token(bus),
                "*" if rule is None else token(rule),
                "*",
            ]
        )
        stream = self.scheme.dead_letter_stream()

        async def after(position: int, literal: str) -> Any:
            try:
                return await jetstream.get_msg(stream, position, subject=literal, next=True)
            except NotFoundError:
                return None

        # Each target's subject is read on its own, in sequence order, and the readings merged:
        # some nats-server versions (2.9) miss the next message for a wildcard subject once the
        # stream's first and last messages were deleted.
        info = await jetstream.stream_info(stream, subjects_filter=subject)
        heads: list[tuple[int, str, Any]] = []
        for literal in sorted(info.state.subjects or {}):
            message = await after(after_id + 1, literal)
            if message is not None:
                heapq.heappush(heads, (message.seq, literal, message))
        while heads:
            seq, literal, message = heapq.heappop(heads)
            following = await after(seq + 1, literal)
            if following is not None:
                heapq.heappush(heads, (following.seq, literal, following))
            letter = _letter(seq, message.data or b"")
            if letter is not None and (within is None or letter["bus"] in within):
                yield letter

    async def _letter(self, jetstream: Any, letter_id: int) -> dict[str, Any] | None:
        from nats.js.errors import NotFoundError

        try:
            message = await jetstream.get_msg(self.scheme.dead_letter_stream(), letter_id)
        except NotFoundError:
            return None
        return _letter(message.seq, message.data or b"")

    def _run(self, action: Callable[[Any], Awaitable[T]]) -> T:
        async def run() -> T:
            import nats
            from nats.js.errors import NotFoundError

            client = await nats.connect(
                servers=self.nats_url.split(","), connect_timeout=5, allow_reconnect=False
            )
            try:
                jetstream = client.jetstream()
                try:
                    await jetstream.stream_info(self.scheme.dead_letter_stream())
                except NotFoundError:  # no delivery has failed yet
                    await ensure_work_streams(jetstream, self.scheme, replicas=self.replicas)
                return await action(jetstream)
            finally:
                await client.close()

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(run())
        # Called on a thread whose event loop is running: the calls block, so they get a loop
        # of their own on another thread.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, run()).result()


def _letter(letter_id: int, data: bytes) -> dict[str, Any] | None:
    """A letter as the database's queue shows one (`raw_event` for redriving it); None for a
    message on the dead-letter subjects that no worker wrote."""
    try:
        body = json.loads(data)
        return _letter_fields(letter_id, body)
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("dead-letter stream message %d is not a letter (%s)", letter_id, exc)
        return None


def _letter_fields(letter_id: int, body: Any) -> dict[str, Any]:
    return {
        "id": letter_id,
        "bus": body["bus"],
        "rule": body["rule"],
        "target_id": body["target_id"],
        "event": stored_json(body["event"], where="event"),
        "error": body["error"],
        "attempts": body["attempts"],
        "failed_at": body["failed_at"],
        "redriven_at": None,
        "event_seq": body["event_seq"],
        "raw_event": body["event"],
    }
