"""Faults in distributed mode (PostgreSQL and NATS JetStream, `jetbridge up --role worker`
processes): a worker killed with SIGKILL loses nothing, its work goes on in another worker."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from test_jetstream_delivery import pending_deliveries
from test_jetstream_outbox import outbox_size, put, stream_messages

from jetbridge.app import build_platform
from jetbridge.config import Settings
from jetbridge.events import registry
from jetbridge.events.jetstream import SubjectScheme
from jetbridge.events.specs import RuleSpec
from support import aio
from support.processes import output_of, process_env, stop

EVENTS = 400


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "jetbridge.cli", "up", "--role", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def lease_holders(nats_url: str, scheme: SubjectScheme) -> set[str]:
    """The workers holding delivery consumers' leases."""

    async def read() -> set[str]:
        import nats
        from nats.js.errors import NoKeysError, NotFoundError

        client = await nats.connect(nats_url)
        try:
            bucket = await client.jetstream().key_value(scheme.owners_bucket())
            holders = set()
            for key in await bucket.keys():
                if key.startswith("deliver-"):
                    with contextlib.suppress(NotFoundError):
                        holders.add((await bucket.get(key)).value.decode())
            return holders
        except (NoKeysError, NotFoundError):
            return set()
        finally:
            await client.close()

    return aio.run(read())


def sink_lines(sink: Path) -> list[str]:
    return sink.read_text().split() if sink.exists() else []


def wait_for(check: object, timeout: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}\n" + "\n".join(output_of(log) for log in logs))
        time.sleep(0.05)


def test_sigkill_of_a_worker_loses_nothing_and_its_work_goes_on_in_another(
    postgres_url: str, nats_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    sink = tmp_path / "sink.txt"
    batch = 8
    env = process_env(
        database_url=postgres_url,
        nats_url=nats_url,
        nats_prefix=nats_prefix,
        delivery_lease_seconds="2",
        delivery_concurrency="4",
        delivery_batch=str(batch),
        handler_plugins="support.handlers",
    )
    env["JETBRIDGE_TEST_SINK"] = str(sink)
    platform = build_platform(
        Settings(
            database_url=postgres_url,
            nats_url=nats_url,
            nats_prefix=nats_prefix,
            run_workers=False,
            handler_plugins=["support.handlers"],
        )
    )
    platform.prepare()
    spec = RuleSpec.model_validate(
        {
            "name": "sink",
            "event_pattern": {"source": ["outbox.test"]},
            "targets": [{"id": "sink", "kind": "python", "handler": "append-to-sink"}],
        }
    )
    with platform.backbone.transaction() as conn:
        registry.put_rule(conn, bus="default", spec=spec, handlers=platform.backbone.handlers)
    put(platform, 0, EVENTS // 2)
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    workers = [start_worker(env, log) for log in logs]
    try:
        wait_for(lambda: len(sink_lines(sink)) >= EVENTS // 8, 120, "no deliveries", logs)
        # The second worker takes over its share of the consumers from the first.
        scheme = platform.relay.scheme  # type: ignore[union-attr]
        wait_for(lambda: len(lease_holders(nats_url, scheme)) == 2, 120, "no split", logs)
        # More events arrive while one worker dies with what it had claimed and relayed.
        writer = threading.Thread(target=put, args=(platform, EVENTS // 2, EVENTS // 2))
        writer.start()
        os.kill(workers[0].pid, signal.SIGKILL)
        workers[0].wait()
        writer.join()
        at_kill = len(set(sink_lines(sink)))
        assert at_kill < EVENTS, "the kill must land while deliveries are pending"
        wait_for(
            lambda: (
                len(set(sink_lines(sink))) == EVENTS
                and platform.backbone.log.pending() == 0
                and outbox_size(platform) == 0
            ),
            180,
            "the surviving worker did not finish",
            logs,
        )
    finally:
        for worker in workers:
            stop(worker)
    delivered = sink_lines(sink)
    expected = {f"ev-{n}" for n in range(EVENTS)}
    assert set(delivered) == expected
    # At least once: only what the killed worker had claimed may have been done twice.
    assert len(delivered) - EVENTS <= batch
    assert aio.run(pending_deliveries(nats_url, scheme)) == 0, "delivered through JetStream"
    relayed = aio.run(stream_messages(nats_url, scheme))
    assert sorted(n for _, _, n in relayed) == list(range(EVENTS)), "each event relayed once"
    platform.engine.dispose()
