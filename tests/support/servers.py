"""Real servers from pip packages for tests: an MQTT broker (amqtt) and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def mqtt_broker() -> Iterator[str]:
    """An amqtt broker on a free loopback port, running in its own thread; yields its URL."""
    from amqtt.broker import Broker

    port = free_port()
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "sys_interval": 0,
        "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
        "topic-check": {"enabled": False},
    }
    loop = asyncio.new_event_loop()
    broker: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        broker["b"] = Broker(config, loop=loop)
        loop.run_until_complete(broker["b"].start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    try:
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        if "b" in broker:
            asyncio.run_coroutine_threadsafe(broker["b"].shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


@dataclass
class Mailbox:
    url: str = ""
    messages: list[Message] = field(default_factory=list)
    # When each message was accepted (time.time()), in the order of `messages`.
    arrivals: list[float] = field(default_factory=list)
    # The client's address and port each message came from (one per connection).
    peers: list[tuple[str, int]] = field(default_factory=list)


@contextmanager
def smtp_server(*, idle_timeout: float = 300) -> Iterator[Mailbox]:
    """An aiosmtpd server on a free loopback port collecting every message it accepts; it
    closes a connection idle for `idle_timeout` seconds (answering 421)."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            message = message_from_bytes(envelope.original_content)
            mailbox.arrivals.append(time.time())
            mailbox.peers.append(tuple(session.peer[:2]))
            mailbox.messages.append(message)
            return "250 Message accepted for delivery"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, timeout=idle_timeout)
    controller.start()
    mailbox.url = f"smtp://127.0.0.1:{port}"
    try:
        yield mailbox
    finally:
        controller.stop()


@contextmanager
def smtp_server_process() -> Iterator[Mailbox]:
    """Like `smtp_server`, with the server in a process of its own (`smtp_sink.py`), so that
    a measurement of the platform does not share its interpreter with the mail server."""
    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("smtp_sink.py")), str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sink.stdout is not None and sink.stdin is not None
    first = json.loads(sink.stdout.readline() or "{}")
    if first.get("ready") != port:
        sink.kill()
        raise RuntimeError("the SMTP server process did not start")
    mailbox = Mailbox(url=f"smtp://127.0.0.1:{port}")
    output = sink.stdout

    def read() -> None:
        for line in output:
            entry = json.loads(line)
            mailbox.arrivals.append(entry["at"])
            mailbox.messages.append(message_from_bytes(base64.b64decode(entry["message"])))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield mailbox
    finally:
        sink.stdin.close()
        try:
            sink.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sink.kill()
            sink.wait()
        reader.join(timeout=10)


@contextmanager
def serve_app(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a loopback port (a free one unless given) in a thread;
    yields its base URL."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 15
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
