"""One worker at a time pulls a delivery consumer: a lease in a NATS key-value bucket.

The bucket's entries expire `ttl` seconds after they were last written (the bucket's max age),
so the lease of a worker that died lapses by itself; a live owner renews its entry with a
compare-and-set on the revision it wrote, and loses the lease the moment another worker's
entry has replaced it. The owner counts its lease from before each write it sent, so the
expiry it believes in is never later than the server's.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

from jetbridge.events.jetstream import SubjectScheme


def worker_identity() -> str:
    """Who holds a lease, as read by an operator in the bucket."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def owners_bucket(jetstream: Any, scheme: SubjectScheme, *, ttl: float, replicas: int) -> Any:
    """The leases bucket, made on first use; an existing bucket is brought to `ttl`."""
    from nats.js.api import KeyValueConfig
    from nats.js.errors import NotFoundError

    name = scheme.owners_bucket()
    try:
        bucket = await jetstream.key_value(name)
    except NotFoundError:
        config = KeyValueConfig(bucket=name, ttl=ttl, history=1, replicas=replicas)
        with contextlib.suppress(Exception):  # another worker made it meanwhile
            await jetstream.create_key_value(config)
        bucket = await jetstream.key_value(name)
    stream = f"KV_{name}"
    info = await jetstream.stream_info(stream)
    if abs((info.config.max_age or 0) - ttl) > 0.001:
        info.config.max_age = ttl
        await jetstream.update_stream(info.config)
    return bucket


@dataclass(slots=True)
class ShardLease:
    """The lease on one consumer (`name`) for this worker (`owner`)."""

    bucket: Any
    name: str
    owner: str
    ttl: float
    revision: int = 0
    expires: float = 0.0  # time.monotonic() when the lease surely lapses

    async def acquire(self) -> bool:
        """True if this worker now owns the consumer; False while another worker does."""
        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        sent = time.monotonic()
        try:
            self.revision = await self.bucket.create(self.name, self.owner.encode())
        except (KeyWrongLastSequenceError, KeyNotFoundError):  # held, or lapsing right now
            return False
        self.expires = sent + self.ttl
        return True

    async def renew(self) -> bool:
        """Push the expiry back; False if the lease lapsed and another worker may hold it.
        Raises if NATS cannot be reached (the lease still runs until `expires`)."""
        from nats.js.errors import KeyWrongLastSequenceError

        sent = time.monotonic()
        try:
            self.revision = await self.bucket.update(
                self.name, self.owner.encode(), last=self.revision
            )
        except KeyWrongLastSequenceError:
            self.expires = 0.0
            return False
        self.expires = sent + self.ttl
        return True

    def remaining(self) -> float:
        return self.expires - time.monotonic()

    async def release(self) -> None:
        """Hand the consumer over at once (after its messages went back to the stream)."""
        self.expires = 0.0
        with contextlib.suppress(Exception):
            await self.bucket.delete(self.name, last=self.revision)


@dataclass(slots=True)
class Share:
    """How many consumers this worker may own: an even split over the live workers, so that
    a second worker takes over half of the first one's consumers."""

    owned: int = 0
    limit: int = 1_000_000

    def may_take(self) -> bool:
        return self.owned < self.limit

    def give_one_up(self) -> bool:
        """True (and counted at once) for one consumer too many."""
        if self.owned > self.limit:
            self.owned -= 1
            return True
        return False

    async def count(self, bucket: Any, owner: str, consumers: int) -> None:
        """Say this worker is alive and split `consumers` over the workers that are."""
        from nats.js.errors import NoKeysError

        await bucket.put(presence_key(owner), owner.encode())
        try:
            workers = sum(key.startswith("worker-") for key in await bucket.keys())
        except NoKeysError:
            workers = 1
        self.limit = max(1, math.ceil(consumers / max(1, workers)))


def presence_key(owner: str) -> str:
    return "worker-" + hashlib.sha256(owner.encode()).hexdigest()[:16]
