"""A database that is briefly unavailable (locked, restarting) is a 503 with Retry-After, never a
500, and the request wrote nothing."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from test_bus_stream import Reader, until

from jetbridge.api.policy import iter_routes
from jetbridge.app import create_app
from jetbridge.config import Settings
from support.auth import as_operator, bearer
from support.postgres import private_postgres
from support.servers import serve_app


def test_a_locked_database_answers_503_with_retry_after(sqlite_url: str) -> None:
    app = create_app(Settings(database_url=sqlite_url, run_workers=False, sqlite_busy_timeout=0.2))
    with TestClient(app, raise_server_exceptions=False) as client:
        as_operator(client)
        holder = sqlite3.connect(str(make_url(sqlite_url).database), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            answer = client.post("/api/buses", json={"name": "while-locked"})
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "1"
        assert answer.json()["error"] == "ServiceUnavailable"
        names = [bus["name"] for bus in client.get("/api/buses").json()]
        assert "while-locked" not in names
        assert client.post("/api/buses", json={"name": "while-locked"}).status_code == 201


class EndingReader(Reader):
    """A bus stream's client that hangs up when told (at the next line: keep-alives come every
    second), so the server can stop before the database it reads is removed."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(url, headers)
        self.ending = threading.Event()

    def run(self) -> None:
        with httpx.stream("GET", self.url, headers=self.headers, timeout=30) as response:
            self.open.set()
            event_id = 0
            for line in response.iter_lines():
                if self.ending.is_set():
                    return
                if line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("data: "):
                    self.seen.append((event_id, json.loads(line[6:])["subject"]))


def plain_api_reads(app: Any) -> list[str]:
    """Every GET route of the API without path parameters."""
    return sorted(
        {
            path
            for path, route in iter_routes(app.routes)
            if path.startswith("/api/")
            and "{" not in path
            and "GET" in (getattr(route, "methods", None) or ())
        }
    )


def put(base: str, auth: dict[str, str], subject: str) -> httpx.Response:
    entry = {"specversion": "1.0", "source": "ops.test", "type": "ops.noted", "subject": subject}
    return httpx.post(
        f"{base}/api/buses/default/events", json={"entries": [entry]}, headers=auth, timeout=30
    )


def test_while_postgres_is_down_the_api_answers_503_and_everything_recovers_by_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    with private_postgres() as server:
        app = create_app(Settings(database_url=server.database(), sse_heartbeat_seconds=1))
        with serve_app(app) as base:
            auth = bearer(app)
            stream = EndingReader(f"{base}/api/buses/default/stream", auth)
            stream.start()
            assert stream.open.wait(60)
            assert put(base, auth, "before").status_code == 200
            until(lambda: [s for _, s in stream.seen] == ["before"], timeout=60)
            reads = plain_api_reads(app)
            assert len(reads) > 20

            server.stop()
            caplog.clear()
            refused = put(base, auth, "during")
            # What needs no database still answers, and does not end the outage.
            assert httpx.get(f"{base}/healthz", timeout=30).status_code == 200
            answers = {path: httpx.get(base + path, headers=auth, timeout=30) for path in reads}
            query = {"query": "{ myBookings { locator } }"}
            answers["/graphql"] = httpx.post(f"{base}/graphql", json=query, headers=auth)
            for answer in [refused, *answers.values()]:
                assert answer.status_code == 503, (answer.request.url, answer.text)
                assert answer.headers["Retry-After"] == "1"
                assert answer.json()["error"] == "ServiceUnavailable"
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
            refusals = [r for r in caplog.records if r.name == "jetbridge.api.outage"]
            assert len(refusals) == 1, "one warning per outage, not one per request"
            assert "unavailable" in refusals[0].getMessage()
            assert "Traceback" not in caplog.text

            server.start()
            deadline = time.monotonic() + 90
            while (after := put(base, auth, "after")).status_code == 503:
                assert time.monotonic() < deadline, "the API did not recover"
                time.sleep(0.2)
            assert after.status_code == 200, after.text
            # The stream stayed open through the outage and goes on; nothing half-written.
            until(lambda: [s for _, s in stream.seen] == ["before", "after"], timeout=60)
            assert stream.is_alive()
            for path in reads:
                assert httpx.get(base + path, headers=auth, timeout=30).status_code < 500, path

            def outage_over() -> bool:  # noted at a request once the database answers
                httpx.get(f"{base}/healthz", timeout=30)
                lines = [r.getMessage() for r in caplog.records if r.name == "jetbridge.api.outage"]
                return "available again" in lines[-1]

            until(outage_over, timeout=60)
            stream.ending.set()
            stream.join(timeout=60)
