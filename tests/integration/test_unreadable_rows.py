"""Listings answer even when a stored event, input or output cannot be decoded or rendered: such
a row is shown as unreadable, with the reason, and the rest of the page as usual."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, insert, select, text, update

from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.storage.db import normalise_url
from jetbridge.storage.schema import dead_letters, events, executions
from support.auth import as_operator

# What a row written before validation existed, or by hand, may hold, with what the reason says.
BAD = [
    ("{not json", "Expecting property name"),
    ('{"a": NaN}', "nan is not a JSON number"),
    ('{"a": "\\ud800"}', "lone surrogate"),
    ("[" * 600 + "]" * 600, "nested deeper than 512 levels"),
    ("[" * 100_000 + "]" * 100_000, "nested deeper than 512 levels"),
]
PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


def corrupt(engine: Engine, table: Any, key: Any, ids: list[Any], column: str) -> None:
    with engine.begin() as conn:
        for ident, (body, _) in zip(ids, BAD, strict=True):
            conn.execute(update(table).where(key == ident).values({column: body}))


def reasons(shown: list[Any]) -> list[str]:
    return [item["unreadable"] for item in shown]


def check_reasons(shown: list[Any]) -> None:
    assert len(shown) == len(BAD)
    for reason, (_, expected) in zip(reasons(shown), BAD, strict=True):
        assert expected in reason, reason


def test_listings_show_unreadable_rows_and_answer(database_url: str) -> None:
    settings = Settings(database_url=database_url, run_workers=False)
    engine = create_engine(normalise_url(database_url))
    app = create_app(settings)
    with TestClient(app) as client:
        as_operator(client)
        entries = [{"specversion": "1.0", "source": "ops", "type": "t", "data": {"n": n}}
                   for n in range(len(BAD) + 1)]  # fmt: skip
        client.post("/api/buses/default/events", json={"entries": entries}).raise_for_status()
        workflows = app.state.platform.workflows
        for n in range(len(BAD) + 1):
            workflows.start(name=f"run-{n}", definition=PASS, input={"n": n})
        with engine.connect() as conn:
            seqs = list(conn.execute(select(events.c.seq).order_by(events.c.seq)).scalars())
        corrupt(engine, events, events.c.seq, seqs[1:], "body")
        names = [f"run-{n}" for n in range(1, len(BAD) + 1)]
        corrupt(engine, executions, executions.c.name, names, "input")
        corrupt(engine, executions, executions.c.name, names, "output")
        with engine.begin() as conn:
            for body, _ in BAD:
                letter = {"event_seq": seqs[0], "bus": "default", "rule": "r", "target_id": "t"}
                conn.execute(
                    insert(dead_letters).values(
                        **letter, body=body, error="e", attempts=1, failed_at=time.time()
                    )
                )

        listed = client.get("/api/buses/default/events")
        assert listed.status_code == 200, listed.text
        shown = [item["event"] for item in listed.json()]
        assert shown[0]["data"] == {"n": 0}
        check_reasons(shown[1:])
        assert all(reason.startswith("event") for reason in reasons(shown[1:]))

        runs = client.get("/api/workflows/executions")
        assert runs.status_code == 200, runs.text
        by_name = {run["name"]: run for run in runs.json()}
        assert by_name["run-0"]["input"] == {"n": 0}
        check_reasons([by_name[name]["input"] for name in names])
        check_reasons([by_name[name]["output"] for name in names])
        assert by_name["run-1"]["output"]["unreadable"].startswith("output")

        letters = client.get("/api/dlq")
        assert letters.status_code == 200, letters.text
        check_reasons([letter["event"] for letter in letters.json()])

    cli = subprocess.run(
        [sys.executable, "-m", "jetbridge.cli", "workflows", "list"],
        capture_output=True,
        text=True,
        env={**os.environ, "JETBRIDGE_DATABASE_URL": database_url},
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    printed = {run["name"]: run for run in json.loads(cli.stdout)}
    check_reasons([printed[name]["input"] for name in names])
    engine.dispose()


def test_text_that_is_not_utf8_is_read_with_replacement_characters(sqlite_url: str) -> None:
    app = create_app(Settings(database_url=sqlite_url, run_workers=False))
    engine = create_engine(sqlite_url)
    with TestClient(app) as client:
        as_operator(client)
        entry = {"specversion": "1.0", "source": "ops", "type": "t", "data": {"a": "b"}}
        client.post("/api/buses/default/events", json={"entries": [entry]}).raise_for_status()
        with engine.begin() as conn:
            conn.execute(text("UPDATE events SET body = CAST(X'7B2261223A22FF227D' AS TEXT)"))
        listed = client.get("/api/buses/default/events")
        assert listed.status_code == 200, listed.text
        assert listed.json()[0]["event"] == {"a": "\ufffd"}
    engine.dispose()
