#!/usr/bin/env python3
"""Set-up entry point: `python3 dev.py up` runs the platform, `python3 dev.py test` runs every test.

Creates `.venv` with the project and its development dependencies on first use, so a fresh clone
needs nothing but Python 3.11+.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent
# JETBRIDGE_DEV_VENV: another place for the environment (the tests use one made for them).
VENV = Path(os.environ.get("JETBRIDGE_DEV_VENV") or ROOT / ".venv")
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".jetbridge-installed"
# After a stop signal, how long the server may take before it is killed: its own drain bound
# (JETBRIDGE_SHUTDOWN_SECONDS) and time for the processes it stops in turn.
STOP_GRACE_SECONDS = float(os.environ.get("JETBRIDGE_SHUTDOWN_SECONDS") or 20) + 30


class Steps:
    """Plain progress lines on stderr for the first set-up: no third-party package exists yet."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:5.1f} s] {text}", file=sys.stderr, flush=True)


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs on whatever python3 is installed
        sys.exit("jetbridge needs Python 3.11 or newer")
    step = Steps()
    if not (BIN / "python").exists():
        step(f"creating the virtual environment {VENV.name}/ (once)")
        venv.EnvBuilder(with_pip=True).create(VENV)
    pyproject = ROOT / "pyproject.toml"
    if not STAMP.exists() or STAMP.stat().st_mtime < pyproject.stat().st_mtime:
        step("installing jetbridge and its development tools with pip (a minute or two)")
        subprocess.run(
            [str(BIN / "python"), "-m", "pip", "install", "-q", "-e", f"{ROOT}[dev]"], check=True
        )
        STAMP.touch()
        step("environment ready")


def run_until_stopped(command: list[str]) -> int:
    """Run a server in a process group of its own until it ends or this process is told to
    stop: SIGINT (Ctrl-C) or SIGTERM is passed on to the server, which drains and exits; after
    STOP_GRACE_SECONDS whatever is left of its process group is killed."""
    if os.name == "nt":
        return subprocess.call(command)
    child = subprocess.Popen(command, start_new_session=True)
    asked: list[float] = []  # when a stop signal arrived

    def forward(signum: int, _: FrameType | None) -> None:
        asked.append(time.monotonic())
        if child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                code = child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if asked and time.monotonic() - asked[0] > STOP_GRACE_SECONDS:
                    print("the server did not stop in time: killed", file=sys.stderr, flush=True)
                    kill_group(child.pid)
                    code = child.wait()
                    break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child.poll() is None:
            kill_group(child.pid)
            child.wait()
    kill_group(child.pid)  # anything the server started that outlived it
    if code < 0:  # ended by a signal
        return 0 if asked and -code in (signal.SIGINT, signal.SIGTERM) else 1
    return code


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def ensure_browser() -> None:
    """Browser tests drive the system's Chromium; on Debian as root, install it if missing."""
    chromium = os.environ.get("JETBRIDGE_TEST_CHROMIUM", "/usr/bin/chromium")
    if Path(chromium).exists() or os.name == "nt" or not shutil.which("apt-get"):
        return
    if os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "chromium"]
        if subprocess.run(install, check=False, env=env).returncode != 0:
            # A fresh machine may have no package lists yet.
            subprocess.run(["apt-get", "update", "-q"], check=False, env=env)
            subprocess.run(install, check=False, env=env)
    else:
        print("browser tests need Chromium: sudo apt-get install chromium", file=sys.stderr)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"up", "test", "check"}:
        print(
            "usage: python3 dev.py up [jetbridge up options] | up --distributed [--port N] "
            "| test [pytest options] | check"
        )
        return 2
    ensure_environment()
    command, rest = argv[0], argv[1:]
    if command == "up" and "--distributed" in rest:
        rest = [arg for arg in rest if arg != "--distributed"]
        return run_until_stopped([str(BIN / "python"), "-m", "jetbridge.devcluster", *rest])
    if command == "up":
        return run_until_stopped([str(BIN / "jetbridge"), "up", "--demo", *rest])
    if command == "check":
        steps = [
            [str(BIN / "ruff"), "check", "."],
            [str(BIN / "ruff"), "format", "--check", "."],
            [str(BIN / "mypy")],
        ]
        return max(subprocess.call(step, cwd=ROOT) for step in steps)
    ensure_browser()
    return subprocess.call([str(BIN / "python"), "-m", "pytest", *rest], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
