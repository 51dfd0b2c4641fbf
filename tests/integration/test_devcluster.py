"""`python3 dev.py up --distributed`: PostgreSQL, NATS, two API processes and two workers on one
machine, each listening where it says; stopping it stops them all."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from support.processes import TESTS


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.timeout(900)  # six processes start on a machine busy with other tests
def test_the_distributed_deployment_starts_on_one_machine_and_stops_as_one(
    tmp_path: Path,
) -> None:
    # Outside pytest's private (0700) temporary root: PostgreSQL runs as a user of its own.
    data_dir = Path(tempfile.mkdtemp(prefix="jetbridge-dev-"))
    try:
        run_and_stop(data_dir, tmp_path)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def run_and_stop(data_dir: Path, tmp_path: Path) -> None:
    paths = [str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    env.pop("JETBRIDGE_DATA_KEYS", None)  # it makes its own, as on a fresh clone
    command = [
        sys.executable,
        "-m",
        "jetbridge.devcluster",
        "--data-dir",
        str(data_dir),
        "--port",
        "0",
    ]
    errors = (tmp_path / "stderr.txt").open("w")
    cluster = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=errors, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert cluster.stdout is not None
        for line in cluster.stdout:
            lines.append(line.rstrip())
            if line.startswith("ready"):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 600
        while not ready.wait(0.5):
            failed = cluster.poll() is not None or time.monotonic() > deadline
            assert not failed, "\n".join(lines) + (tmp_path / "stderr.txt").read_text()[-3000:]
        text = "\n".join(lines)
        apis = re.findall(r"^API \d+ +(http://\S+)/ \(pid (\d+)\)", text, re.M)
        workers = [int(pid) for pid in re.findall(r"^worker \d+ +pid (\d+)", text, re.M)]
        database = re.search(r"^PostgreSQL +(\S+)", text, re.M)
        nats = re.search(r"^NATS +nats://127.0.0.1:(\d+)", text, re.M)
        assert len(apis) == 2 and len(workers) == 2 and database and nats, text
        for base, _ in apis:
            assert httpx.get(f"{base}/api/fids/ZRH/departures", timeout=10).status_code == 200
        pids = [int(pid) for _, pid in apis] + workers
    finally:
        cluster.send_signal(signal.SIGTERM)
        cluster.wait(timeout=120)
    reader.join(10)
    errors.close()
    assert lines[-1] == "stopped"
    assert all(gone(pid) for pid in pids)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(database.group(1), connect_timeout=5).close()
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", int(nats.group(1))), timeout=1).close()
        except OSError:
            break
        assert time.monotonic() < deadline, "NATS is still listening"
        time.sleep(0.2)
