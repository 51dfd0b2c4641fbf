"""A telex naming an unknown flight is refused alone, at once, without holding up other writers."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from test_ingest import jetbridge

from jetbridge.app import create_app
from jetbridge.config import Settings
from support.auth import as_operator

REAL = Path(__file__).parents[1] / "unit" / "flights" / "data" / "real"
BATCH = (REAL / "mvt_batch.txt").read_bytes()
# Far below SQLite's 30 s busy timeout, which a writer waiting on its own lock would hit.
PROMPT = 5.0


def test_push_refuses_unknown_flights_alone_and_promptly(database_url: str) -> None:
    with TestClient(create_app(Settings(database_url=database_url, run_workers=False))) as client:
        as_operator(client)
        started = threading.Barrier(2)

        def push() -> tuple[float, Any, int]:
            started.wait()
            begun = time.monotonic()
            answer = client.post("/api/ingest/mvt", content=BATCH)
            return time.monotonic() - begun, answer.json(), answer.status_code

        def publish() -> tuple[float, int]:
            started.wait()
            begun = time.monotonic()
            entry = {"specversion": "1.0", "source": "test.ops", "type": "probe", "data": {}}
            answer = client.post("/api/buses/default/events", json={"entries": [entry]})
            return time.monotonic() - begun, answer.status_code

        with ThreadPoolExecutor(2) as pool:
            pushed, published = pool.submit(push), pool.submit(publish)
            (push_seconds, body, status), (publish_seconds, publish_status) = (
                pushed.result(timeout=60),
                published.result(timeout=60),
            )
        assert status == 200, body
        assert push_seconds < PROMPT
        assert (publish_status, publish_seconds < PROMPT) == (200, True)
        assert [a["flight_key"] for a in body["applied"]] == [
            "LX1612Z-2026-11-24-ZRH-VIE",
            "LX1612Z-2026-11-24-ZRH-VIE",
        ]
        refused = body["refused"]
        assert [r["location"] for r in refused] == ["http line 20", "http line 28"]
        assert "BA713 on 2026-11-24 (LHR-?)" in refused[0]["message"]
        logged = client.get("/api/ingest/errors", params={"source": "mvt"}).json()
        assert [(e["location"], e["message"]) for e in logged] == [
            (r["location"], r["message"]) for r in refused
        ]


def test_cli_names_refused_messages_and_exits_1(tmp_path: Path) -> None:
    batch = tmp_path / "mvt_batch.txt"
    batch.write_bytes(BATCH)
    env = {"JETBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    begun = time.monotonic()
    result = jetbridge(
        "ingest", "mvt", str(batch), "--received-at", "2026-11-24T12:30:00+00:00", env=env
    )
    assert time.monotonic() - begun < 30
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert [json.loads(line)["flight_key"] for line in result.stdout.splitlines()] == [
        "LX1612Z-2026-11-24-ZRH-VIE",
        "LX1612Z-2026-11-24-ZRH-VIE",
    ]
    refusals = [line for line in result.stderr.splitlines() if line.startswith("refused: ")]
    assert len(refusals) == 2
    assert refusals[0].startswith(f"refused: {batch} line 20: no single known flight matches")
