"""Distributed mode on PostgreSQL and NATS JetStream: what the outbox relay and the commit
wake-ups cost over the raw engines, measured in one run.

Rows, each timed from before the write to when a subscriber holds the message or signal:

- raw JetStream: publish (acknowledged by the stream) -> a subscriber on the subject receives it.
- raw PostgreSQL: insert one row and commit (no reader).
- PostgreSQL NOTIFY: commit with `pg_notify` -> a LISTENing connection in another thread hears it
  (what wakes another process's SSE boards and workers).
- jetbridge outbox: `put_events` (one event, committed with its outbox row) -> the relay
  publishes it to JetStream -> a subscriber on the bus's subjects receives it.
- raw JetStream consumer: publish (acknowledged) -> a durable pull consumer fetches it -> ack.
- jetbridge delivery: `put_events` -> the relay -> the rule target's durable JetStream consumer
  in the worker -> the Python handler runs (then the acknowledgement).

Then throughput: N events put in batches of 50 by one writer, until the last is in JetStream;
N events (on 50 partition keys) from `put_events` until the handler has run for the last; and
the consumers alone: N deliveries relayed while the worker's consumers were stopped, from their
start until the handler has run for the last, beside a raw durable consumer draining N waiting
messages. The delivery runs once for each `--in-flight` value (1 is one message at a time per
consumer, as before lanes).

    python bench/bench_distributed.py --database postgresql://postgres@127.0.0.1:5432/test \\
        --nats nats://127.0.0.1:4222 [--messages 500] [--events 5000] [--in-flight 1,32]

The database given is used as a server: the script creates a fresh database on it and drops it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import nats
import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from jetbridge.app import build_platform
from jetbridge.config import Settings
from jetbridge.events.jetstream import JetStreamRelay, SubjectScheme
from jetbridge.events.wakeups import libpq_url
from jetbridge.ops.crypto import DataKey
from jetbridge.storage.db import normalise_url


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def row(name: str, latencies: list[float], per_second: float | None = None) -> str:
    ms = [v * 1000 for v in latencies]
    rate = f"{per_second:,.0f}" if per_second is not None else "-"
    return (
        f"| {name} | {len(ms)} | {percentile(ms, 0.5):.2f} | {percentile(ms, 0.99):.2f} | {rate} |"
    )


async def raw_jetstream(url: str, prefix: str, count: int) -> tuple[list[float], float]:
    client = await nats.connect(url)
    jetstream = client.jetstream()
    stream = f"{prefix}-raw"
    await jetstream.add_stream(name=stream, subjects=[f"{prefix}.raw.>"])
    arrived: dict[int, float] = {}
    got = asyncio.Event()

    async def on_message(message: Any) -> None:
        arrived[int(message.data)] = time.perf_counter()
        got.set()

    await client.subscribe(f"{prefix}.raw.>", cb=on_message)
    latencies = []
    started = time.perf_counter()
    for n in range(count):
        got.clear()
        sent = time.perf_counter()
        await jetstream.publish(
            f"{prefix}.raw.k{n % 10}", str(n).encode(), headers={"Nats-Msg-Id": str(n)}
        )
        while n not in arrived:
            await got.wait()
            got.clear()
        latencies.append(arrived[n] - sent)
    elapsed = time.perf_counter() - started
    await jetstream.delete_stream(stream)
    await client.close()
    return latencies, count / elapsed


async def raw_consumer(url: str, prefix: str, count: int) -> list[float]:
    from nats.js.api import AckPolicy, ConsumerConfig

    client = await nats.connect(url)
    jetstream = client.jetstream()
    stream = f"{prefix}-rawwork"
    await jetstream.add_stream(name=stream, subjects=[f"{prefix}.rawwork.>"])
    reader = await jetstream.pull_subscribe(
        f"{prefix}.rawwork.>",
        durable="bench",
        stream=stream,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=1),
    )
    latencies = []
    for n in range(count):
        sent = time.perf_counter()
        await jetstream.publish(f"{prefix}.rawwork.k{n % 10}", str(n).encode())
        (message,) = await reader.fetch(1, timeout=10)
        await message.ack_sync()
        latencies.append(time.perf_counter() - sent)
    await jetstream.delete_stream(stream)
    await client.close()
    return latencies


async def raw_drain(url: str, prefix: str, count: int) -> float:
    """Messages already in a stream, fetched by a durable pull consumer in batches of 100 and
    each acknowledged: per second."""
    from nats.js.api import AckPolicy, ConsumerConfig

    client = await nats.connect(url)
    jetstream = client.jetstream()
    stream = f"{prefix}-rawdrain"
    await jetstream.add_stream(name=stream, subjects=[f"{prefix}.rawdrain.>"])
    for n in range(count):
        await jetstream.publish(f"{prefix}.rawdrain.k{n % 50}", str(n).encode())
    reader = await jetstream.pull_subscribe(
        f"{prefix}.rawdrain.>",
        durable="bench",
        stream=stream,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=1000),
    )
    started = time.perf_counter()
    drained = 0
    while drained < count:
        for message in await reader.fetch(100, timeout=10):
            await message.ack()
            drained += 1
    rate = count / (time.perf_counter() - started)
    await jetstream.delete_stream(stream)
    await client.close()
    return rate


def raw_commit(url: str, count: int) -> tuple[list[float], float]:
    with psycopg.connect(url, autocommit=False) as conn:
        conn.execute("CREATE TABLE bench_raw (id bigserial PRIMARY KEY, body text)")
        conn.commit()
        latencies = []
        started = time.perf_counter()
        for n in range(count):
            sent = time.perf_counter()
            conn.execute("INSERT INTO bench_raw (body) VALUES (%s)", (str(n),))
            conn.commit()
            latencies.append(time.perf_counter() - sent)
        return latencies, count / (time.perf_counter() - started)


def notify_latency(url: str, count: int) -> list[float]:
    heard: dict[str, float] = {}
    ready = threading.Event()
    done = threading.Event()

    def listen() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("LISTEN bench_wakeup")
            ready.set()
            for notice in conn.notifies(timeout=60):
                heard[notice.payload] = time.perf_counter()
                if len(heard) == count:
                    break
        done.set()

    threading.Thread(target=listen, daemon=True).start()
    ready.wait(30)
    latencies = []
    with psycopg.connect(url, autocommit=False) as conn:
        for n in range(count):
            sent = time.perf_counter()
            conn.execute("INSERT INTO bench_raw (body) VALUES (%s)", (str(n),))
            conn.execute("SELECT pg_notify('bench_wakeup', %s)", (str(n),))
            conn.commit()
            while str(n) not in heard:
                time.sleep(0.0001)
            latencies.append(heard[str(n)] - sent)
    done.wait(30)
    return latencies


async def outbox(
    database_url: str, nats_url: str, prefix: str, count: int, events: int
) -> tuple[list[float], float, float]:
    settings = Settings(
        database_url=database_url,
        nats_url=nats_url,
        nats_prefix=prefix,
        data_keys=os.environ.get("JETBRIDGE_DATA_KEYS") or DataKey.generate("bench").entry(),
    )
    platform = build_platform(settings)
    await asyncio.to_thread(platform.prepare)
    scheme = SubjectScheme(prefix)
    relay = JetStreamRelay(platform.engine, nats_url, scheme=scheme, idle_seconds=1.0)
    platform.backbone.listeners.append(relay.wake)
    client = await nats.connect(nats_url)
    arrived: dict[str, float] = {}

    async def on_message(message: Any) -> None:
        arrived[message.headers["Jetbridge-Event-Id"]] = time.perf_counter()

    await client.subscribe(scheme.all_events(), cb=on_message)

    def put(first: int, size: int) -> None:
        entries = [
            {
                "specversion": "1.0",
                "id": f"e{n}",
                "source": "bench",
                "type": "t",
                "partitionkey": f"LX{n % 50}",
                "data": {"n": n},
            }
            for n in range(first, first + size)
        ]
        platform.backbone.put_events(bus="default", entries=entries)

    async def until(check: Callable[[], bool]) -> None:
        while not check():
            await asyncio.sleep(0.0002)

    # Throughput: the writer fills the outbox with the relay stopped, then the relay drains it.
    started = time.perf_counter()
    await asyncio.to_thread(lambda: [put(first, 50) for first in range(0, events, 50)])
    written = events / (time.perf_counter() - started)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    started = time.perf_counter()
    await until(lambda: f"e{events - 1}" in arrived)
    rate = events / (time.perf_counter() - started)
    # Latency: one event at a time, the relay running.
    latencies = []
    for n in range(events, events + count):
        sent = time.perf_counter()
        await asyncio.to_thread(put, n, 1)
        await until(lambda n=n: f"e{n}" in arrived)
        latencies.append(arrived[f"e{n}"] - sent)
    stop.set()
    await task
    await client.close()
    await platform.stop()
    return latencies, rate, written


async def delivery(
    database_url: str,
    nats_url: str,
    prefix: str,
    count: int,
    events: int,
    shards: int,
    in_flight: int,
) -> tuple[list[float], float, float]:
    """put_events -> relay -> the target's JetStream consumer -> handler, in one process; the
    latencies, the rate end to end and the rate of the consumers alone."""
    from jetbridge.events import registry
    from jetbridge.events.specs import RuleSpec

    handled: dict[str, float] = {}

    def handler(payload: Any) -> None:
        handled[payload["id"]] = time.perf_counter()

    settings = Settings(
        database_url=database_url,
        nats_url=nats_url,
        nats_prefix=prefix,
        nats_delivery_shards=shards,
        nats_delivery_in_flight=in_flight,
        data_keys=os.environ.get("JETBRIDGE_DATA_KEYS") or DataKey.generate("bench").entry(),
    )
    platform = build_platform(settings, handlers={"bench": handler})
    await asyncio.to_thread(platform.prepare)
    rule = RuleSpec.model_validate(
        {
            "name": "bench",
            "event_pattern": {"source": ["bench.delivery"]},
            "targets": [{"id": "bench", "kind": "python", "handler": "bench"}],
        }
    )
    with platform.backbone.transaction() as conn:
        registry.put_rule(conn, bus="default", spec=rule, handlers=platform.backbone.handlers)
    assert platform.relay is not None and platform.jetstream_deliveries is not None
    stop = asyncio.Event()
    consumers_stop = asyncio.Event()
    tasks = [
        asyncio.create_task(platform.relay.run(stop)),
        asyncio.create_task(platform.jetstream_deliveries.run(consumers_stop)),
    ]

    def put(first: int, size: int) -> None:
        entries = [
            {
                "specversion": "1.0",
                "id": f"{prefix}-{n}",
                "source": "bench.delivery",
                "type": "t",
                "partitionkey": f"LX{n % 50}",
                "data": {"n": n},
            }
            for n in range(first, first + size)
        ]
        platform.backbone.put_events(bus="default", entries=entries)

    async def until(check: Callable[[], bool]) -> None:
        while not check():
            await asyncio.sleep(0.0002)

    await asyncio.to_thread(put, -1, 1)  # consumers made and warm
    await until(lambda: f"{prefix}--1" in handled)
    latencies = []
    for n in range(count):
        sent = time.perf_counter()
        await asyncio.to_thread(put, n, 1)
        await until(lambda n=n: f"{prefix}-{n}" in handled)
        latencies.append(handled[f"{prefix}-{n}"] - sent)
    started = time.perf_counter()
    first = count
    await asyncio.to_thread(lambda: [put(k, 50) for k in range(first, first + events, 50)])
    last = range(first + events - 50, first + events)
    await until(lambda: all(f"{prefix}-{n}" in handled for n in last))
    await until(lambda: len(handled) >= events + count + 1)
    rate = events / (time.perf_counter() - started)
    print(f"consumers in the worker: {len(platform.jetstream_deliveries.consumers)}")
    # The consumers alone: the deliveries wait in JetStream (relayed while no consumer ran),
    # then the worker's consumers start and drain them.
    relay, deliveries = platform.relay, platform.jetstream_deliveries
    consumers_stop.set()
    await tasks.pop()
    relayed = relay.relayed + events
    first += events
    await asyncio.to_thread(lambda: [put(k, 50) for k in range(first, first + events, 50)])
    await until(lambda: relay.relayed >= relayed)
    restarted = asyncio.Event()
    started = time.perf_counter()
    tasks.append(asyncio.create_task(deliveries.run(restarted)))
    await until(lambda: len(handled) >= count + 1 + 2 * events)
    drained = events / (time.perf_counter() - started)
    restarted.set()
    stop.set()
    await asyncio.gather(*tasks)
    await platform.stop()
    return latencies, rate, drained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--nats", required=True)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument(
        "--shards", type=int, default=Settings().nats_delivery_shards, help="consumers per target"
    )
    parser.add_argument(
        "--in-flight",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, Settings().nats_delivery_in_flight],
        help="deliveries in flight per consumer, one delivery run for each (comma-separated)",
    )
    args = parser.parse_args()
    server = normalise_url(args.database)
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    database = make_url(server).set(database=name).render_as_string(hide_password=False)
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    try:
        js, js_rate = asyncio.run(raw_jetstream(args.nats, prefix, args.messages))
        commit, commit_rate = raw_commit(libpq_url(database), args.messages)
        notify = notify_latency(libpq_url(database), args.messages)
        relayed, relay_rate, put_rate = asyncio.run(
            outbox(database, args.nats, prefix, args.messages, args.events)
        )
        consumed = asyncio.run(raw_consumer(args.nats, prefix, args.messages))
        raw_drained = asyncio.run(raw_drain(args.nats, prefix, args.events))
        deliveries = {
            in_flight: asyncio.run(
                delivery(
                    database,
                    args.nats,
                    f"{prefix}d{in_flight}",
                    args.messages,
                    args.events,
                    args.shards,
                    in_flight,
                )
            )
            for in_flight in args.in_flight
        }
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    print("| path | n | p50 ms | p99 ms | sequential per s |")
    print("|---|---|---|---|---|")
    print(row("raw JetStream publish (acked) -> subscriber", js, js_rate))
    print(row("raw PostgreSQL insert + commit", commit, commit_rate))
    print(row("PostgreSQL commit with NOTIFY -> listener", notify))
    print(row("jetbridge put_events -> outbox relay -> JetStream subscriber", relayed))
    print(row("raw JetStream publish (acked) -> durable pull consumer -> ack", consumed))
    for in_flight, (delivered, _, _) in deliveries.items():
        print(
            row(
                f"jetbridge put_events -> relay -> JetStream consumer -> handler "
                f"({in_flight} in flight per consumer)",
                delivered,
            )
        )
    print()
    print(
        f"outbox throughput: one writer put {args.events:,} events in batches of 50 at "
        f"{put_rate:,.0f} events/s; the relay then moved them into JetStream at "
        f"{relay_rate:,.0f} events/s (raw sequential acked publish: {js_rate:,.0f}/s)"
    )
    print(
        f"raw JetStream consumer: {args.events:,} waiting messages fetched in batches of 100 "
        f"and acknowledged at {raw_drained:,.0f} messages/s"
    )
    for in_flight, (_, delivery_rate, drain_rate) in deliveries.items():
        print(
            f"delivery throughput ({args.shards} consumers per target, {in_flight} in flight per "
            f"consumer, one worker process): {args.events:,} events on 50 partition keys from "
            f"put_events to the handler at {delivery_rate:,.0f} events/s; the consumers alone "
            f"drained {args.events:,} waiting deliveries at {drain_rate:,.0f} events/s"
        )


if __name__ == "__main__":
    main()
