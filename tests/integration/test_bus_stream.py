"""The live stream of a bus: one shared reader per bus, resume by Last-Event-ID, buses apart."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx

from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.events import registry
from support.auth import bearer
from support.servers import serve_app


class Reader(threading.Thread):
    """An SSE client of a bus's stream, keeping (id, subject) of every event it is sent."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(daemon=True)
        self.url, self.headers = url, headers or {}
        self.seen: list[tuple[int, str]] = []
        self.open = threading.Event()

    def run(self) -> None:
        with httpx.stream("GET", self.url, headers=self.headers, timeout=30) as response:
            self.open.set()
            event_id = 0
            for line in response.iter_lines():
                if line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("data: "):
                    self.seen.append((event_id, json.loads(line[6:])["subject"]))


def entries(*subjects: str) -> list[dict[str, Any]]:
    return [
        {"specversion": "1.0", "source": "airport.ops", "type": "ops.noted", "subject": s}
        for s in subjects
    ]


def until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and not check():
        time.sleep(0.02)
    assert check()


def test_bus_streams_are_shared_resumable_and_kept_apart(sqlite_url: str) -> None:
    app = create_app(Settings(database_url=sqlite_url))
    backbone = app.state.platform.backbone
    with serve_app(app) as base:
        with backbone.transaction() as conn:
            registry.ensure_bus(conn, name="ops")
        auth = bearer(app)
        assert httpx.get(f"{base}/api/buses/ops/stream", timeout=5).status_code == 401
        missing = httpx.get(f"{base}/api/buses/nowhere/stream", headers=auth, timeout=5)
        assert missing.status_code == 404
        negative = httpx.get(f"{base}/api/buses/ops/stream?after=-1", headers=auth, timeout=5)
        assert negative.status_code == 422
        readers = [Reader(f"{base}/api/buses/ops/stream", auth) for _ in range(3)]
        others = Reader(f"{base}/api/buses/default/stream", auth)
        for reader in [*readers, others]:
            reader.start()
            assert reader.open.wait(5)
        time.sleep(0.2)
        backbone.put_events(bus="ops", entries=entries("a", "b", "c"))
        backbone.put_events(bus="default", entries=entries("elsewhere"))
        until(lambda: all(len(r.seen) == 3 for r in readers) and len(others.seen) == 1)
        assert all([s for _, s in r.seen] == ["a", "b", "c"] for r in readers)
        assert others.seen[0][1] == "elsewhere"
        first_id = readers[0].seen[0][0]
        resumed = Reader(f"{base}/api/buses/ops/stream", {**auth, "Last-Event-ID": str(first_id)})
        resumed.start()
        until(lambda: len(resumed.seen) == 2)
        assert [s for _, s in resumed.seen] == ["b", "c"]
        assert len(app.state.platform.broadcasters) == 2  # one reader per bus, not per client


def shows(url: str, header: str, wanted: bytes, auth: dict[str, str] | None = None) -> bool:
    """Whether the stream, opened with `header` as Last-Event-ID, soon sends `wanted`."""
    headers: dict[str, Any] = {**(auth or {}), "Last-Event-ID": header.encode()}
    with httpx.stream("GET", url, headers=headers, timeout=10) as response:
        assert response.status_code == 200
        received = b""
        for chunk in response.iter_bytes():
            received += chunk
            if wanted in received:
                return True
        return False


def test_hostile_or_foreign_last_event_ids_start_afresh(sqlite_url: str) -> None:
    app = create_app(Settings(database_url=sqlite_url))
    backbone = app.state.platform.backbone
    with serve_app(app) as base:
        backbone.put_events(bus="default", entries=entries("x", "y"))
        auth = bearer(app)
        board = f"{base}/api/fids/ZRH/departures/stream"
        live = f"{base}/api/buses/default/stream"
        for header in ["9" * 5000, "99999999999999", "-5", "1e9", "٣"]:
            # A position no log of ours has: the board starts with a snapshot at the latest
            # position, the live stream with the latest events.
            assert shows(board, header, b"id: 2\nevent: snapshot"), header
            assert shows(live, header, b'"subject":"y"', auth), header
