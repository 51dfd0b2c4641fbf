"""Long commands report progress on stderr: plain lines when it is not a terminal (as here, and
in logs), the result alone on stdout. Replays started from the command line can be followed
until a worker has replayed them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.config import Settings
from support.auth import as_operator

FEEDS = Path(__file__).parents[1] / "unit" / "flights" / "data"


def jetbridge(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jetbridge.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_ingest_and_schedule_import_report_files_as_plain_lines(tmp_path: Path) -> None:
    from support.ssim import leg, segment, ssim_file

    env = {"JETBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'jb.db'}"}
    ingested = jetbridge("ingest", "aidx", str(FEEDS / "aidx_departure.xml"), env=env)
    assert ingested.returncode == 0, ingested.stderr
    lines = ingested.stderr.splitlines()
    assert "ingesting aidx: started" in lines  # after the note that the database is new
    assert lines[-1].startswith("ingesting aidx: done: 1/1 files, 1 applied, 0 refused")
    assert json.loads(ingested.stdout)["version"] == 1  # stdout: the result only

    winter = tmp_path / "winter.ssim"
    winter.write_text(ssim_file(leg(first="01DEC26", last="03DEC26"), segment("010", "LH 5790")))
    imported = jetbridge("schedule", "import", str(winter), str(winter), env=env)
    assert imported.returncode == 0, imported.stderr
    lines = imported.stderr.splitlines()
    assert lines[0] == "importing schedules: started"
    assert lines[-1].startswith("importing schedules: done: 2/2 files, 6 legs published")
    assert json.loads(imported.stdout)["legs"] == 6

    missing = jetbridge("ingest", "mvt", str(tmp_path / "none.txt"), env=env)
    assert missing.returncode == 2
    assert missing.stderr.splitlines()[-1].startswith("ingesting mvt: stopped: 0/1 files")


def test_replays_start_wait_follows_a_replay_to_its_end(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jb.db'}"
    # This process runs the worker that replays; the command only starts and follows it.
    app = create_app(Settings(database_url=url))
    with TestClient(app) as client:
        as_operator(client)
        archive = {
            "name": "gates",
            "bus": "default",
            "event_pattern": {"source": ["airport.gates"]},
        }
        assert client.post("/api/archives", json=archive).status_code == 201
        begin = datetime.now(UTC) - timedelta(seconds=5)
        entries = [
            {"specversion": "1.0", "source": "airport.gates", "type": "flight.gate_changed",
             "id": f"evt-{n}", "data": {"n": n}}
            for n in range(3)
        ]  # fmt: skip
        assert client.post("/api/buses/default/events", json={"entries": entries}).is_success
        end = datetime.now(UTC) + timedelta(seconds=1)
        followed = jetbridge(
            "replays", "start", "--name", "again", "--archive", "gates",
            "--from", begin.isoformat(), "--to", end.isoformat(), "--wait",
            env={"JETBRIDGE_DATABASE_URL": url},
        )  # fmt: skip
        assert followed.returncode == 0, followed.stderr
        replay = json.loads(followed.stdout)
        assert (replay["state"], replay["events_replayed"]) == ("COMPLETED", 3)
        lines = followed.stderr.splitlines()
        assert lines[0] == "replaying again: started"
        assert lines[-1].startswith("replaying again: done: 3/3 events, completed")
        shown = jetbridge("replays", "list", env={"JETBRIDGE_DATABASE_URL": url})
        assert [r["name"] for r in json.loads(shown.stdout)] == ["again"]
        unknown = jetbridge(
            "replays", "start", "--name", "x", "--archive", "nope",
            "--from", begin.isoformat(), "--to", end.isoformat(),
            env={"JETBRIDGE_DATABASE_URL": url},
        )  # fmt: skip
        assert unknown.returncode == 2
        assert "archive 'nope' does not exist" in unknown.stderr
