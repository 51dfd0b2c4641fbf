"""A database that is briefly unavailable (locked, restarting) is a 503 with Retry-After, never a
500, and the request wrote nothing."""

from __future__ import annotations

import sqlite3

from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from jetbridge.app import create_app
from jetbridge.config import Settings
from support.auth import as_operator


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
