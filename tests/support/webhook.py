"""A real HTTP server on loopback that records the webhooks it receives."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Receiver:
    url: str = ""
    port: int = 0
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    location: str | None = None  # sent with every answer: a redirect when the status is 3xx
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Event = field(default_factory=threading.Event)  # set at each request
    release: threading.Event | None = None  # when given, answers wait until it is set

    def next_status(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else 200


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


@contextmanager
def webhook_receiver(host: str = "127.0.0.1") -> Iterator[Receiver]:
    """A receiver on `host` (an IPv4 or IPv6 loopback address) and a free port."""
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            status = receiver.next_status()
            with receiver.lock:
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            receiver.arrived.set()
            if receiver.release is not None:
                receiver.release.wait(timeout=60)
            self.send_response(status)
            if receiver.location is not None:
                self.send_header("Location", receiver.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = (_Server6 if ":" in host else ThreadingHTTPServer)((host, 0), Handler)
    shown = f"[{host}]" if ":" in host else host
    receiver.port = server.server_address[1]
    receiver.url = f"http://{shown}:{receiver.port}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
