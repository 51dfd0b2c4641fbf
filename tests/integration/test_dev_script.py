"""`python3 dev.py up`: stopping dev.py (SIGTERM, or Ctrl-C's SIGINT) stops the server it
started, which drains and exits; the port is free again and no process is left behind."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from support.processes import TESTS, output_of
from support.servers import free_port

ROOT = TESTS.parent


def environment_for_dev_py(directory: Path) -> Path:
    """An environment dev.py takes as set up: its python and jetbridge are this test's."""
    bin_dir = directory / "bin"
    bin_dir.mkdir(parents=True)
    for name, run in (("python", ""), ("jetbridge", " -m jetbridge.cli")):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}"{run} "$@"\n')
        script.chmod(0o755)
    stamp = directory / ".jetbridge-installed"
    stamp.touch()
    later = (ROOT / "pyproject.toml").stat().st_mtime + 1
    os.utime(stamp, (later, later))
    return directory


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stopping_dev_py_stops_the_server_it_started(
    tmp_path: Path, signum: signal.Signals
) -> None:
    port = free_port()
    data = tmp_path / "data"
    env = {
        **os.environ,
        "JETBRIDGE_DEV_VENV": str(environment_for_dev_py(tmp_path / "venv")),
        "JETBRIDGE_DATA_DIR": str(data),
        "JETBRIDGE_DATABASE_URL": f"sqlite:///{data / 'jetbridge.db'}",
        "JETBRIDGE_SHUTDOWN_SECONDS": "10",
    }
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        dev = subprocess.Popen(
            [sys.executable, str(ROOT / "dev.py"), "up", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert dev.poll() is None, output_of(log)
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, output_of(log)
            time.sleep(0.1)
        (server,) = children_of(dev.pid)
        dev.send_signal(signum)
        code = dev.wait(timeout=60)
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait()
    assert code == 0, output_of(log)
    assert "Traceback" not in output_of(log)
    assert gone(server), output_of(log)
    assert port_free(port)


def test_the_first_set_up_says_what_it_does_with_the_time_taken(tmp_path: Path) -> None:
    """An environment that exists but has not had the project installed: dev.py installs it
    (here a stand-in python records the pip call) and prints each step as a plain line."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    calls = tmp_path / "calls.txt"
    for name in ("python", "ruff", "mypy"):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\n')
        script.chmod(0o755)
    env = {**os.environ, "JETBRIDGE_DEV_VENV": str(tmp_path / "venv")}
    checked = subprocess.run(
        [sys.executable, str(ROOT / "dev.py"), "check"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    steps = checked.stderr.splitlines()
    assert len(steps) == 2, checked.stderr
    assert re.fullmatch(
        r"\[ *\d+\.\d s\] installing jetbridge and its development tools .*", steps[0]
    )
    assert re.fullmatch(r"\[ *\d+\.\d s\] environment ready", steps[1])
    assert calls.read_text().splitlines()[0] == f"python -m pip install -q -e {ROOT}[dev]"
    assert (tmp_path / "venv" / ".jetbridge-installed").exists()
    again = subprocess.run(
        [sys.executable, str(ROOT / "dev.py"), "check"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 0 and again.stderr == ""  # set up already: nothing to say
