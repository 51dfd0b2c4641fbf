"""A worker killed with SIGKILL while deliveries are pending loses none of them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jetbridge.app import build_platform
from jetbridge.config import Settings
from jetbridge.events import registry
from jetbridge.events.specs import RuleSpec

EVENTS = 400


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "jetbridge.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def delivered_ids(sink: Path) -> list[str]:
    return sink.read_text().split() if sink.exists() else []


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigkill_mid_delivery_loses_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")
    sink = tmp_path / "sink.txt"
    env = {
        **os.environ,
        "JETBRIDGE_DATABASE_URL": url,
        "JETBRIDGE_TEST_SINK": str(sink),
        "JETBRIDGE_DELIVERY_LEASE_SECONDS": "2",
        "JETBRIDGE_DELIVERY_POLL_SECONDS": "0.05",
        "JETBRIDGE_DELIVERY_CONCURRENCY": "4",
        "JETBRIDGE_DELIVERY_BATCH": "8",
        "JETBRIDGE_HANDLER_PLUGINS": "support.handlers",
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    platform = build_platform(
        Settings(database_url=url, run_workers=False, handler_plugins=["support.handlers"])
    )
    platform.prepare()
    spec = RuleSpec.model_validate(
        {
            "name": "sink",
            "event_pattern": {"source": ["crash.test"]},
            "targets": [{"id": "sink", "kind": "python", "handler": "append-to-sink"}],
        }
    )
    with platform.backbone.transaction() as conn:
        registry.put_rule(conn, bus="default", spec=spec, handlers=platform.backbone.handlers)
    entries = [
        {
            "specversion": "1.0",
            "id": f"ev-{n}",
            "source": "crash.test",
            "type": "t",
            "data": {"n": n},
        }
        for n in range(EVENTS)
    ]
    for start in range(0, EVENTS, 100):
        platform.backbone.put_events(bus="default", entries=entries[start : start + 100])

    worker = start_worker(env)
    deadline = time.time() + 60
    while len(delivered_ids(sink)) < EVENTS // 4 and time.time() < deadline:
        time.sleep(0.02)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    at_kill = len(set(delivered_ids(sink)))
    assert 0 < at_kill < EVENTS, "the kill must land while deliveries are pending"

    worker = start_worker(env)
    try:
        deadline = time.time() + 120
        while len(set(delivered_ids(sink))) < EVENTS and time.time() < deadline:
            time.sleep(0.1)
        while platform.backbone.log.pending() and time.time() < deadline:
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert set(delivered_ids(sink)) == {f"ev-{n}" for n in range(EVENTS)}
    assert platform.backbone.log.pending() == 0
    platform.engine.dispose()
    print(json.dumps({"backend": backend, "delivered_before_kill": at_kill}))
