"""Feed ingestion end to end: dry-run CLI, applying files, HTTP pushes and the error log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.storage.schema import flights
from support.auth import as_operator

DATA = Path(__file__).parents[1] / "unit" / "flights" / "data"
REAL = DATA / "real"


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


@pytest.mark.parametrize(
    ("kind", "name", "received_at", "count"),
    [
        ("aidx", "aidx_soap11_response_lcy.xml", "2026-11-24T12:30:00+00:00", 2),
        ("aidx", "aidx_soap11_response_warning_only.xml", "2026-11-24T12:30:00+00:00", 0),
        ("aidx", "aidx_soap12_prefixed_bom_crlf.xml", "2026-11-24T12:30:00+00:00", 4),
        ("aidx", "aidx_iso8859_1.xml", "2026-11-24T12:30:00+00:00", 1),
        ("aidx", "aidx_declared_iso8859_1_sent_utf8.xml", "2026-11-24T12:30:00+00:00", 1),
        ("mvt", "mvt_navblue_departure.txt", "2026-12-01T03:00:00+00:00", 1),
        ("mvt", "mvt_typeb_crlf.txt", "2026-11-24T12:30:00+00:00", 1),
        ("mvt", "mvt_batch.txt", "2026-11-24T12:30:00+00:00", 4),
        ("mvt", "mvt_cr_lowercase.txt", "2026-11-24T12:30:00+00:00", 1),
        ("mvt", "mvt_delay_codes.txt", "2026-11-24T12:30:00+00:00", 1),
        ("asm", "asm_typeb_submessages.txt", "2026-11-20T10:30:00+00:00", 7),
        ("asm", "ssm_period.txt", "2026-11-20T10:30:00+00:00", 4),
    ],
)
def test_dry_run_reads_feeds_as_other_systems_send_them(
    kind: str, name: str, received_at: str, count: int
) -> None:
    result = jetbridge("ingest", kind, str(REAL / name), "--dry-run", "--received-at", received_at)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == count
    assert all(isinstance(line["fields"], dict) and line["source_time"] for line in lines)


def test_dry_run_prints_the_real_values() -> None:
    result = jetbridge(
        "ingest",
        "mvt",
        str(REAL / "mvt_typeb_crlf.txt"),
        str(REAL / "mvt_cr_lowercase.txt"),
        "--dry-run",
        "--received-at",
        "2026-11-24T12:30:00+00:00",
    )
    assert result.returncode == 0, result.stderr
    crlf, lowercase = (json.loads(line) for line in result.stdout.splitlines())
    assert crlf["source_time"] == "2026-11-24T12:21:00+00:00"
    assert crlf["fields"]["times.off_block.actual"] == "2026-11-24T12:05:00Z"
    assert (crlf["fields"]["delays.1.code"], crlf["fields"]["delays.1.minutes"]) == ("93", 15)
    assert crlf["fields"]["registration"] == "DAIPX"
    assert lowercase["fields"]["remarks"] == "LATE INBOUND"
    soap = jetbridge("ingest", "aidx", str(REAL / "aidx_soap11_response_lcy.xml"), "--dry-run")
    first = json.loads(soap.stdout.splitlines()[0])
    assert first["flight_key"] == "MMD5055-2019-11-18-SGD-LCY"
    assert first["fields"]["times.on_block.actual"] == "2019-11-18T12:49:00Z"


@pytest.mark.parametrize(
    ("kind", "content", "expected"),
    [
        (
            "aidx",
            b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">\n<s:Body>\n'
            b'<IATA_AIDX_FlightLegNotifRQ TimeStamp="2026-11-24T06:00:00Z"><FlightLeg>',
            ":line 3 column 72: malformed XML: no element found at '<FlightLeg>'",
        ),
        (
            "aidx",
            b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>',
            ":Envelope/Body: SOAP Body holds no AIDX flight leg message",
        ),
        (
            "mvt",
            b"QU ZRHKKLX\r\n.FRAKKLH 241530\r\nMVT\r\nLH1234/24.DAIPX\r\nDL72/9X/0030\r\n",
            ":line 4: flight identification must look like BA0123/24.GBLNA.LHR at 'LH1234/24.DAIPX'",
        ),
        (
            "asm",
            b"ASM\nUTC\nTIM/X-Z\nLX1/24NOV26\nZRH0640 CDG0800\n",
            ":line 3: action must be one of",
        ),
    ],
)
def test_dry_run_names_file_line_or_element_and_token_of_new_forms(
    tmp_path: Path, kind: str, content: bytes, expected: str
) -> None:
    bad = tmp_path / f"bad.{kind}"
    bad.write_bytes(content)
    result = jetbridge("ingest", kind, str(bad), "--dry-run")
    assert result.returncode == 2
    assert f"{bad}{expected}" in result.stderr


def test_dry_run_reports_bad_input_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("MVT\nLX318/2X.HBJDA.ZRH\nAD2561\n")
    result = jetbridge("ingest", "mvt", str(bad), "--dry-run")
    assert result.returncode == 2
    assert f"{bad}:line 2" in result.stderr
    assert "'LX318/2X.HBJDA.ZRH'" in result.stderr
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
        as_operator(client)
        pushed = client.post("/api/ingest/aidx", content=(DATA / "aidx_departure.xml").read_bytes())
        assert pushed.status_code == 200, pushed.text
        assert pushed.json()["applied"][0]["version"] == 1
        again = client.post("/api/ingest/aidx", content=(DATA / "aidx_departure.xml").read_bytes())
        assert again.json()["applied"][0]["version"] is None
        kept = client.post("/api/ingest/mvt", content=b"MVT\nLX318/24.HBJDA.ZRH\nAD2561")
        assert kept.status_code == 200, kept.text
        (warning,) = kept.json()["warnings"]
        assert warning["location"] == "http MVT/AD"
        assert "line 3: time must be HHMM or DDHHMM" in warning["message"]
        assert "'AD2561'" in warning["message"]
        bad = client.post("/api/ingest/mvt", content=b"MVT\nLX318/2X.HBJDA.ZRH\nAD0738")
        assert bad.status_code == 400
        assert "'LX318/2X.HBJDA.ZRH'" in bad.json()["message"]
        garbage = client.post("/api/ingest/aidx", content=b"\xff\xfe")
        assert garbage.status_code == 400
        assert "malformed XML" in garbage.json()["message"]
        assert client.post("/api/ingest/csv", content=b"x").status_code == 422
        logged = client.get("/api/ingest/errors").json()
        assert [(e["source"], e["level"], "2561" in e["message"]) for e in logged] == [
            ("mvt", "warning", True),
            ("mvt", "error", False),
            ("aidx", "error", False),
        ]
        assert client.get("/api/flights/LX0318-2026-11-24-ZRH-LHR").json()["gate"] == "E24"


def test_http_push_reads_aidx_in_its_declared_encoding_and_soap(database_url: str) -> None:
    with TestClient(create_app(Settings(database_url=database_url, run_workers=False))) as client:
        as_operator(client)
        latin = client.post("/api/ingest/aidx", content=(REAL / "aidx_iso8859_1.xml").read_bytes())
        assert latin.status_code == 200, latin.text
        remarks = client.get("/api/flights/LX0318-2026-11-24-ZRH-LHR").json()["remarks"]
        assert remarks == "Verspätung wegen Enteisung, Abflug ca. 08:35"
        soap = client.post(
            "/api/ingest/aidx", content=(REAL / "aidx_soap12_prefixed_bom_crlf.xml").read_bytes()
        )
        assert soap.status_code == 200, soap.text
        assert [a["flight_key"] for a in soap.json()["applied"]] == [
            "LX1612-2026-11-24-ZRH-VIE",
            "U21034Z-2026-11-24-LGW-ZRH",
            "LX1832-2026-11-24-ZRH-BCN",
            "LX0318-2026-11-24-ZRH-LHR-R1",
        ]
        assert client.get("/api/flights/LX1612-2026-11-24-ZRH-VIE").json()["gate"] == "A54"


def amplifying_ssm(flights: int, periods: int) -> bytes:
    """A short SSM whose every period line applies to every flight line before it."""
    lines = ["SSM", "UTC", "NEW", *(f"LX{n}" for n in range(1, flights + 1))]
    lines += ["01APR26 31OCT26 1234567"] * periods + ["J 320", "ZRH0640 CDG0800"]
    return "\n".join(lines).encode()


def stored_flights(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(flights)).scalar_one())
    finally:
        engine.dispose()


def test_http_push_over_the_flight_bound_is_refused_whole_and_logged(database_url: str) -> None:
    settings = Settings(database_url=database_url, run_workers=False)
    with TestClient(create_app(settings)) as client:
        as_operator(client)
        refused = client.post("/api/ingest/asm", content=amplifying_ssm(1000, 2000))
        assert refused.status_code == 400
        message = refused.json()["message"]
        assert message.startswith("http:line 4: the message would change 428000000 flight legs")
        assert "more than the 2000 one message may change" in message
        assert "JETBRIDGE_FEED_MAX_FLIGHTS_PER_MESSAGE" in message
        (logged,) = client.get("/api/ingest/errors", params={"source": "asm"}).json()
        assert logged["location"] == "http line 4"
        assert "428000000 flight legs" in logged["message"]
    assert stored_flights(database_url) == 0


def test_http_push_bounds_follow_the_settings(sqlite_url: str) -> None:
    settings = Settings(
        database_url=sqlite_url,
        run_workers=False,
        feed_max_flights_per_message=3,
        feed_max_period_days=7,
    )
    three = b"SSM\nUTC\nNEW\nLX1\n01APR26 03APR26 1234567\nZRH0640 CDG0800"
    with TestClient(create_app(settings)) as client:
        as_operator(client)
        assert len(client.post("/api/ingest/asm", content=three).json()["applied"]) == 3
        four = client.post("/api/ingest/asm", content=three.replace(b"03APR26", b"04APR26"))
        assert four.status_code == 400
        assert "would change 4 flight legs, more than the 3" in four.json()["message"]
        long = client.post("/api/ingest/asm", content=three.replace(b"03APR26", b"08APR26"))
        assert long.status_code == 400
        assert "covers 8 days, more than the 7 a period may cover" in long.json()["message"]
        mvt = b"MVT\nLX318/24.HBJDA.ZRH\nAD0740/0750\n" * 4
        assert "4 flight legs" in client.post("/api/ingest/mvt", content=mvt).json()["message"]
        assert len(client.get("/api/ingest/errors").json()) == 3
    assert stored_flights(sqlite_url) == 3


def test_cli_refuses_a_file_over_the_bound_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    message = tmp_path / "season.ssm"
    message.write_bytes(amplifying_ssm(3, 1))
    env = {"JETBRIDGE_DATABASE_URL": database_url, "JETBRIDGE_FEED_MAX_FLIGHTS_PER_MESSAGE": "500"}
    result = jetbridge("ingest", "asm", str(message), env=env)
    assert result.returncode == 2
    assert f"{message}:line 6: the message would change 642 flight legs, more than the 500" in (
        result.stderr
    )
    assert stored_flights(database_url) == 0
    dry = jetbridge("ingest", "asm", str(message), "--dry-run", env=env)
    assert dry.returncode == 2
    assert "JETBRIDGE_FEED_MAX_FLIGHTS_PER_MESSAGE" in dry.stderr
    allowed = jetbridge(
        "ingest", "asm", str(message), env={**env, "JETBRIDGE_FEED_MAX_FLIGHTS_PER_MESSAGE": "642"}
    )
    assert allowed.returncode == 0, allowed.stderr
    assert stored_flights(database_url) == 3 * 214


def test_cli_refuses_an_out_of_range_receipt_time() -> None:
    result = jetbridge(
        "ingest", "mvt", str(DATA / "mvt_departure.txt"), "--dry-run",
        "--received-at", "0001-01-01T00:00:00+14:00",
    )  # fmt: skip
    assert result.returncode == 2
    assert "--received-at: time: 0001-01-01T00:00:00+14:00 is not between" in result.stderr
