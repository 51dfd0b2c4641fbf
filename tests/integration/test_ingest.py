"""Feed ingestion end to end: dry-run CLI, applying files, HTTP pushes and the error log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.config import Settings

DATA = Path(__file__).parents[1] / "unit" / "flights" / "data"


def jetbridge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jetbridge.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_dry_run_prints_canonical_updates_as_json_lines() -> None:
    result = jetbridge(
        "ingest",
        "mvt",
        str(DATA / "mvt_departure.txt"),
        str(DATA / "mvt_arrival_cor.txt"),
        "--dry-run",
        "--received-at",
        "2026-11-24T07:50:00+00:00",
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["fields"].get("times.off_block.actual") for line in lines] == [
        "2026-11-24T07:38:00Z",
        None,
    ]


def test_dry_run_reports_bad_input_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("MVT\nLX318/24.HBJDA.ZRH\nAD2561\n")
    result = jetbridge("ingest", "mvt", str(bad), "--dry-run")
    assert result.returncode == 2
    assert f"{bad}:line 3" in result.stderr
    assert "'2561'" in result.stderr
    missing = jetbridge("ingest", "aidx", str(tmp_path / "none.xml"), "--dry-run")
    assert missing.returncode == 2


def test_files_apply_to_the_hub_and_telex_finds_its_flight(tmp_path: Path) -> None:
    env = {"JETBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    assert jetbridge("ingest", "aidx", str(DATA / "aidx_departure.xml"), env=env).returncode == 0
    arrival = jetbridge(
        "ingest",
        "mvt",
        str(DATA / "mvt_arrival_cor.txt"),
        "--received-at",
        "2026-11-24T09:05:00+00:00",
        env=env,
    )
    assert arrival.returncode == 0, arrival.stderr
    (applied,) = [json.loads(line) for line in arrival.stdout.splitlines()]
    assert applied["flight_key"] == "LX0318-2026-11-24-ZRH-LHR"
    assert applied["version"] == 2


def test_http_push_applies_and_logs_malformed_messages(database_url: str) -> None:
    with TestClient(create_app(Settings(database_url=database_url, run_workers=False))) as client:
        pushed = client.post("/api/ingest/aidx", content=(DATA / "aidx_departure.xml").read_bytes())
        assert pushed.status_code == 200, pushed.text
        assert pushed.json()["applied"][0]["version"] == 1
        again = client.post("/api/ingest/aidx", content=(DATA / "aidx_departure.xml").read_bytes())
        assert again.json()["applied"][0]["version"] is None
        bad = client.post("/api/ingest/mvt", content=b"MVT\nLX318/24.HBJDA.ZRH\nAD2561")
        assert bad.status_code == 400
        assert "'2561'" in bad.json()["message"]
        assert client.post("/api/ingest/aidx", content=b"\xff\xfe").status_code == 400
        assert client.post("/api/ingest/csv", content=b"x").status_code == 422
        (logged,) = client.get("/api/ingest/errors").json()
        assert logged["source"] == "mvt"
        assert "2561" in logged["message"]
        assert client.get("/api/flights/LX0318-2026-11-24-ZRH-LHR").json()["gate"] == "E24"
