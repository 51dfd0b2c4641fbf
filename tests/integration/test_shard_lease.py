"""A delivery consumer's lease in the NATS key-value bucket: one holder at a time, lapsing by
itself, never believed in by its holder after the server let it go; and the even share of the
consumers among the live workers."""

from __future__ import annotations

import time
from typing import Any

from jetbridge.events.jetstream import SubjectScheme
from jetbridge.events.shard_lease import ShardLease, Share, owners_bucket
from support import aio

TTL = 1.0


async def with_bucket(nats_url: str, prefix: str, scenario: Any) -> None:
    import nats

    client = await nats.connect(nats_url)
    jetstream = client.jetstream()
    scheme = SubjectScheme(prefix)
    try:
        bucket = await owners_bucket(jetstream, scheme, ttl=TTL, replicas=1)
        await scenario(bucket)
    finally:
        await jetstream.delete_key_value(scheme.owners_bucket())
        await client.close()


def test_one_holder_until_the_lease_lapses_or_is_released(nats_url: str, nats_prefix: str) -> None:
    async def scenario(bucket: Any) -> None:
        first = ShardLease(bucket, "deliver-x", "worker-a", TTL)
        second = ShardLease(bucket, "deliver-x", "worker-b", TTL)
        assert await first.acquire()
        assert not await second.acquire(), "held by the first worker"
        assert await first.renew()
        # The first worker stops renewing (it died): the second takes over once it lapsed.
        deadline = time.monotonic() + 30
        while not await second.acquire():
            assert time.monotonic() < deadline, "the lease never lapsed"
            assert first.remaining() > -25
        assert first.remaining() <= 0, "the holder never outlives the server's lease"
        assert not await first.renew(), "a lapsed lease cannot be renewed once taken"
        await second.release()
        assert await first.acquire(), "a released lease is free at once"

    aio.run(with_bucket(nats_url, nats_prefix, scenario))


def test_the_consumers_are_split_evenly_over_the_live_workers(
    nats_url: str, nats_prefix: str
) -> None:
    async def scenario(bucket: Any) -> None:
        alone, other = Share(), Share()
        await alone.count(bucket, "worker-a", 32)
        assert alone.limit == 32
        await other.count(bucket, "worker-b", 32)
        await alone.count(bucket, "worker-a", 32)
        assert (alone.limit, other.limit) == (16, 16)
        alone.owned = 18
        assert [alone.give_one_up() for _ in range(3)] == [True, True, False]
        assert alone.owned == 16 and not alone.may_take()

    aio.run(with_bucket(nats_url, nats_prefix, scenario))
