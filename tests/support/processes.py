"""jetbridge processes for multi-process tests: `jetbridge up` and `jetbridge worker` as
subprocesses, each with its own environment, output kept in a file for when a test fails."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from support.servers import free_port

TESTS = Path(__file__).parents[1]


def process_env(**settings: str) -> dict[str, str]:
    """The test's environment plus `JETBRIDGE_*` settings, with the tests' handlers importable."""
    env = {**os.environ, **{f"JETBRIDGE_{k.upper()}": v for k, v in settings.items()}}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    return env


def output_of(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:] if log.exists() else ""


@contextmanager
def api_processes(
    env: Mapping[str, str], logs: Sequence[Path], *, ready_seconds: float = 120
) -> Iterator[list[str]]:
    """`jetbridge up` on free loopback ports, one per log file, started together; yields their
    base URLs once every one answers."""
    ports = [free_port() for _ in logs]
    processes = []
    try:
        for port, log in zip(ports, logs, strict=True):
            with log.open("wb") as out:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "jetbridge.cli", "up", "--port", str(port)],
                        env=dict(env),
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        deadline = time.monotonic() + ready_seconds
        for process, base, log in zip(processes, bases, logs, strict=True):
            wait_until_answering(process, base, log, deadline)
        yield bases
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            stop(process)


def wait_until_answering(
    process: subprocess.Popen[bytes], base: str, log: Path, deadline: float
) -> None:
    while True:
        if process.poll() is not None:
            raise AssertionError(f"jetbridge up exited early:\n{output_of(log)}")
        try:
            if httpx.get(f"{base}/", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"jetbridge up did not answer:\n{output_of(log)}")
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
