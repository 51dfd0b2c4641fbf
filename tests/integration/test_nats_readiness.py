"""Distributed mode's readiness: /readyz checks NATS (connected, JetStream answering, the outbox
not too far behind) and says why when not ready; puts go on into the outbox meanwhile."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.config import Settings
from support.auth import bearer
from support.nats import NatsServer


def event(n: int) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"ready-{n}", "source": "ready.test", "type": "t"}


def readiness(client: TestClient) -> tuple[int, dict[str, str]]:
    answer = client.get("/readyz")
    return answer.status_code, answer.json()["checks"]


def wait_for(check: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.05)


def test_readiness_follows_a_nats_server_stopped_and_started_again(
    postgres_url: str, nats_prefix: str, tmp_path: Path
) -> None:
    server = NatsServer(tmp_path / "jetstream")
    server.start()
    try:
        settings = Settings(database_url=postgres_url, nats_url=server.url, nats_prefix=nats_prefix)
        with TestClient(create_app(settings)) as client:
            feeds = bearer(client.app)
            wait_for(lambda: readiness(client)[0] == 200, "never ready")
            checks = readiness(client)[1]
            assert checks["nats"] == "ok" and checks["database"] == "ok"

            server.stop()
            wait_for(lambda: readiness(client)[0] == 503, "ready without NATS")
            _, checks = readiness(client)
            assert "NATS is not connected" in checks["nats"] or "JetStream" in checks["nats"]
            assert checks["database"] == "ok"
            # Puts do not depend on NATS: they wait in the outbox.
            for n in range(5):
                put = client.post(
                    "/api/buses/default/events", json={"entries": [event(n)]}, headers=feeds
                )
                assert put.status_code == 200, put.text

            server.start()
            # Ready again without a restart, once the relay has emptied the outbox.
            wait_for(lambda: readiness(client)[0] == 200, "not ready after NATS returned")
            assert readiness(client)[1]["nats"] == "ok"
    finally:
        server.stop()


def test_an_outbox_too_far_behind_is_not_ready_and_says_so(
    postgres_url: str, nats_url: str, nats_prefix: str
) -> None:
    # No worker in this process: nothing relays, so the outbox only grows.
    settings = Settings(
        database_url=postgres_url,
        nats_url=nats_url,
        nats_prefix=nats_prefix,
        run_workers=False,
        nats_ready_backlog=3,
        nats_ready_age_seconds=3600,
    )
    with TestClient(create_app(settings)) as client:
        feeds = bearer(client.app)
        wait_for(lambda: readiness(client)[0] == 200, "never ready")
        entries = [event(n) for n in range(4)]
        put = client.post("/api/buses/default/events", json={"entries": entries}, headers=feeds)
        assert put.status_code == 200, put.text
        status, checks = readiness(client)
        assert status == 503
        assert checks["nats"] == "4 events wait in the outbox for JetStream (more than 3)"

    aged = settings.model_copy(update={"nats_ready_backlog": 100, "nats_ready_age_seconds": 0.5})
    with TestClient(create_app(aged)) as client:
        wait_for(lambda: readiness(client)[0] == 503, "an old outbox is ready")
        reason = readiness(client)[1]["nats"]
        assert reason.startswith("the oldest event waiting for JetStream was put "), reason
        assert reason.endswith("s ago (more than 0.5 s)"), reason
