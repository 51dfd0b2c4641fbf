"""The example mappings shipped for common AODB schema shapes capture what they say: a wide
flights table, and an arrival/departure split whose deletes remove or cancel flights."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from jetbridge.aodb.cdc import InvalidMapping, TableMapping
from jetbridge.aodb.settings import InvalidCaptureSettings, load_capture_settings
from jetbridge.aodb.sources import LogicalSource, open_source
from jetbridge.app import build_platform
from jetbridge.config import Settings
from jetbridge.flights.cdc_runner import CdcRunner
from jetbridge.flights.hub import FlightHub, get_flight
from jetbridge.storage.db import create_database_engine

MAPPINGS = Path(__file__).parents[2] / "src" / "jetbridge" / "aodb" / "mappings"
NOW = datetime.now(UTC).replace(tzinfo=None, microsecond=0)

WIDE = """CREATE TABLE "FLIGHTS" (
  "FLIGHT_ID" INTEGER PRIMARY KEY, "CARRIER" VARCHAR(3) NOT NULL, "FLIGHT_NO" VARCHAR(5) NOT NULL,
  "SCHED_DATE" VARCHAR(10) NOT NULL, "ORIGIN" VARCHAR(3) NOT NULL, "DESTINATION" VARCHAR(3) NOT NULL,
  "STATUS" VARCHAR(3), "STD" TIMESTAMP, "ETD" TIMESTAMP, "ATD" TIMESTAMP, "AIRBORNE" TIMESTAMP,
  "LANDED" TIMESTAMP, "STA" TIMESTAMP, "ETA" TIMESTAMP, "ATA" TIMESTAMP, "DEP_TERMINAL" VARCHAR(4),
  "ARR_TERMINAL" VARCHAR(4), "GATE" VARCHAR(6), "STAND" VARCHAR(6), "BELT" VARCHAR(4),
  "AC_TYPE" VARCHAR(4), "REGISTRATION" VARCHAR(10), "MODIFIED_UTC" TIMESTAMP NOT NULL,
  "VERSION_NO" INTEGER NOT NULL)"""
ARRIVALS = """CREATE TABLE "ARRIVALS" (
  "ARR_ID" INTEGER PRIMARY KEY, "AIRLINE" VARCHAR(3) NOT NULL, "FLIGHT_NUMBER" VARCHAR(5) NOT NULL,
  "FLIGHT_DATE" VARCHAR(10) NOT NULL, "FROM_AIRPORT" VARCHAR(3) NOT NULL, "STATUS" VARCHAR(10),
  "SCHEDULED" TIMESTAMP, "EXPECTED" TIMESTAMP, "LANDED" TIMESTAMP, "ON_BLOCK" TIMESTAMP,
  "TERMINAL" VARCHAR(4), "STAND" VARCHAR(6), "BELT" VARCHAR(4), "LAST_CHANGE" TIMESTAMP NOT NULL)"""
DEPARTURES = """CREATE TABLE "DEPARTURES" (
  "DEP_ID" INTEGER PRIMARY KEY, "AIRLINE" VARCHAR(3) NOT NULL, "FLIGHT_NUMBER" VARCHAR(5) NOT NULL,
  "FLIGHT_DATE" VARCHAR(10) NOT NULL, "TO_AIRPORT" VARCHAR(3) NOT NULL, "STATUS" VARCHAR(10),
  "SCHEDULED" TIMESTAMP, "EXPECTED" TIMESTAMP, "OFF_BLOCK" TIMESTAMP, "AIRBORNE" TIMESTAMP,
  "TERMINAL" VARCHAR(4), "GATE" VARCHAR(6), "STAND" VARCHAR(6), "CHECK_IN" VARCHAR(32),
  "LAST_CHANGE" TIMESTAMP NOT NULL)"""

MOVEMENTS = """CREATE TABLE "MOVEMENTS" (
  "MOVEMENT_ID" INTEGER PRIMARY KEY, "OPERATOR" VARCHAR(3) NOT NULL,
  "FLIGHT_NUMBER" VARCHAR(5) NOT NULL, "OPERATION_DATE" VARCHAR(10) NOT NULL,
  "ORIGIN" VARCHAR(3) NOT NULL, "DESTINATION" VARCHAR(3) NOT NULL, "MOVEMENT_STATUS" VARCHAR(3),
  "SOBT" TIMESTAMP, "EOBT" TIMESTAMP, "AOBT" TIMESTAMP, "ATOT" TIMESTAMP, "ALDT" TIMESTAMP,
  "SIBT" TIMESTAMP, "EIBT" TIMESTAMP, "AIBT" TIMESTAMP, "TERMINAL" VARCHAR(4),
  "UPDATED_AT" TIMESTAMP NOT NULL, "REVISION" INTEGER NOT NULL)"""
ALLOCATIONS = """CREATE TABLE "RESOURCE_ALLOCATIONS" (
  "ALLOCATION_ID" INTEGER PRIMARY KEY, "MOVEMENT_ID" INTEGER NOT NULL,
  "RESOURCE_TYPE" VARCHAR(8) NOT NULL, "RESOURCE_CODE" VARCHAR(32) NOT NULL,
  "UPDATED_AT" TIMESTAMP NOT NULL)"""


def execute(engine: Engine, sql: str, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql), values)


def drain(runner: CdcRunner) -> None:
    while runner.step():
        pass


def hub(url: str) -> FlightHub:
    platform = build_platform(Settings(database_url=url, run_workers=False))
    platform.prepare()
    return FlightHub(platform.backbone)


def view(flights: FlightHub, key: str) -> dict[str, Any] | None:
    with flights.backbone.reading() as conn:
        return get_flight(conn, key)


def test_the_wide_table_mapping(tmp_path: Path, sqlite_url: str) -> None:
    legacy = create_database_engine(f"sqlite:///{tmp_path / 'aodb.db'}")
    execute(legacy, WIDE)
    execute(
        legacy,
        'INSERT INTO "FLIGHTS" ("FLIGHT_ID", "CARRIER", "FLIGHT_NO", "SCHED_DATE", "ORIGIN", '
        '"DESTINATION", "STATUS", "STD", "AIRBORNE", "DEP_TERMINAL", "GATE", "MODIFIED_UTC", '
        '"VERSION_NO") VALUES (7, \'LX\', \'318\', \'2026-11-24\', \'ZRH\', \'CDG\', \'AIR\', '
        ":std, :air, '2', 'E44', :now, 3)",
        std=datetime(2026, 11, 24, 7, 0), air=datetime(2026, 11, 24, 7, 14), now=NOW,
    )  # fmt: skip
    mapping = TableMapping.load(MAPPINGS / "wide-flights.toml")
    flights = hub(sqlite_url)
    drain(CdcRunner(open_source("watermark", url="", engine=legacy, mapping=mapping), flights))
    leg = view(flights, "LX0318-2026-11-24-ZRH-CDG")
    assert leg is not None
    assert (leg["status"], leg["terminal"], leg["gate"]) == ("departed", "2", "E44")
    assert leg["times"]["take_off"]["actual"] == "2026-11-24T07:14:00Z"
    legacy.dispose()


def test_the_arrival_departure_split_with_deletes(postgres_url: str, sqlite_url: str) -> None:
    legacy = create_database_engine(postgres_url)
    execute(legacy, ARRIVALS)
    execute(legacy, DEPARTURES)
    flights = hub(sqlite_url)
    runners = []
    for name in ("arrivals", "departures"):
        mapping = TableMapping.load(MAPPINGS / f"{name}.toml")
        source = open_source(
            "logical", url=postgres_url, engine=legacy, mapping=mapping,
            slot=f"jb_{name}_{uuid.uuid4().hex[:6]}",
        )  # fmt: skip
        runners.append(CdcRunner(source, flights, name=name))
    try:
        execute(
            legacy,
            'INSERT INTO "ARRIVALS" VALUES (1, \'LH\', \'1188\', \'2026-11-24\', \'FRA\', '
            "'LANDED', :sta, NULL, :landed, NULL, '1', 'A12', NULL, :now)",
            sta=datetime(2026, 11, 24, 9, 0), landed=datetime(2026, 11, 24, 8, 55), now=NOW,
        )  # fmt: skip
        execute(
            legacy,
            'INSERT INTO "DEPARTURES" VALUES (1, \'LH\', \'1189\', \'2026-11-24\', \'FRA\', '
            "'BOARDING', :std, NULL, NULL, NULL, '1', 'A12', 'A12', '1-4', :now)",
            std=datetime(2026, 11, 24, 10, 0), now=NOW,
        )  # fmt: skip
        for runner in runners:
            drain(runner)
        arrival = view(flights, "LH1188-2026-11-24-FRA-ZRH")
        departure = view(flights, "LH1189-2026-11-24-ZRH-FRA")
        assert arrival is not None and departure is not None
        assert (arrival["status"], arrival["arrival_terminal"]) == ("arrived", "1")
        assert (departure["status"], departure["gate"]) == ("boarding", "A12")
        execute(legacy, 'DELETE FROM "ARRIVALS"')
        execute(legacy, 'DELETE FROM "DEPARTURES"')
        for runner in runners:
            drain(runner)
        assert view(flights, "LH1188-2026-11-24-FRA-ZRH") is None  # on_delete = "remove"
        cancelled = view(flights, "LH1189-2026-11-24-ZRH-FRA")
        assert cancelled is not None and cancelled["status"] == "cancelled"
    finally:
        for runner in runners:
            assert isinstance(runner.source, LogicalSource)
            runner.source.capture.drop()
        legacy.dispose()


def test_movements_and_resource_allocations(postgres_url: str, sqlite_url: str) -> None:
    legacy = create_database_engine(postgres_url)
    execute(legacy, MOVEMENTS)
    execute(legacy, ALLOCATIONS)
    execute(legacy, 'ALTER TABLE "RESOURCE_ALLOCATIONS" REPLICA IDENTITY FULL')
    flights = hub(sqlite_url)
    runners = []
    for name in ("movements", "allocations"):
        mapping = TableMapping.load(MAPPINGS / f"{name}.toml")
        source = open_source(
            "logical", url=postgres_url, engine=legacy, mapping=mapping,
            slot=f"jb_{name}_{uuid.uuid4().hex[:6]}",
        )  # fmt: skip
        runners.append(CdcRunner(source, flights, name=name))
    movements, allocations = runners
    key = "LX1612-2026-11-24-ZRH-VIE"
    try:
        execute(
            legacy,
            "INSERT INTO \"MOVEMENTS\" (\"MOVEMENT_ID\", \"OPERATOR\", \"FLIGHT_NUMBER\", "
            "\"OPERATION_DATE\", \"ORIGIN\", \"DESTINATION\", \"MOVEMENT_STATUS\", \"SOBT\", "
            "\"TERMINAL\", \"UPDATED_AT\", \"REVISION\") VALUES "
            "(41, 'LX', '1612', '2026-11-24', 'ZRH', 'VIE', 'BRD', :std, '1', :now, 1)",
            std=datetime(2026, 11, 24, 9, 0), now=NOW,
        )  # fmt: skip
        for allocation, kind, code in [
            (1, "GATE", "A52"),
            (2, "STAND", "A52"),
            (3, "CHECKIN", "1-3"),
        ]:
            execute(
                legacy,
                'INSERT INTO "RESOURCE_ALLOCATIONS" VALUES (:a, 41, :kind, :code, :now)',
                a=allocation, kind=kind, code=code, now=NOW,
            )  # fmt: skip
        drain(allocations)  # before its movement was captured: reported, not applied
        drain(movements)
        leg = view(flights, key)
        assert leg is not None and leg["status"] == "boarding" and "gate" not in leg
        execute(legacy, 'UPDATE "RESOURCE_ALLOCATIONS" SET "UPDATED_AT" = :now', now=NOW)
        drain(allocations)
        leg = view(flights, key)
        assert leg is not None
        assert (leg["gate"], leg["stand"], leg["check_in_counters"]) == ("A52", "A52", "1-3")
        execute(
            legacy,
            'UPDATE "RESOURCE_ALLOCATIONS" SET "RESOURCE_CODE" = \'A54\' WHERE "ALLOCATION_ID" = 1',
        )
        execute(legacy, 'DELETE FROM "RESOURCE_ALLOCATIONS" WHERE "ALLOCATION_ID" = 2')
        drain(allocations)
        leg = view(flights, key)
        assert leg is not None and leg["gate"] == "A54" and "stand" not in leg
    finally:
        for runner in runners:
            assert isinstance(runner.source, LogicalSource)
            runner.source.capture.drop()
        legacy.dispose()


@pytest.mark.parametrize(
    ("text_", "fragment"),
    [
        ('[source]\nname="a"\ntable="T"\nprimary_key="K"\nchanged_at="C"\non_delete="drop"\n'
         '[identity]\nairline="A"\nflight_number="F"\norigin_date="D"\n'
         'departure_airport="=ZRH"\narrival_airport="B"\n', "source.on_delete 'drop'"),
        ('[source]\nname="a"\ntable="T"\nprimary_key="K"\nchanged_at="C"\n[identity]\n'
         'airline="A;DROP"\nflight_number="F"\norigin_date="D"\ndeparture_airport="=ZRH"\n'
         'arrival_airport="B"\n', "identity.airline"),
        ('[source]\nname="a"\ntable="T"\nprimary_key="K"\nchanged_at="C"\non_delete="clear"\n'
         '[flight]\nsource="movements"\nkey="M"\n', "'clear' needs a \\[resource\\] section"),
        ('[source]\nname="a"\ntable="T"\nprimary_key="K"\nchanged_at="C"\n'
         '[flight]\nsource="movements"\nkey="M;"\n', "flight.key must be a column name"),
        ('[source]\nname="a"\ntable="T"\nprimary_key="K"\nchanged_at="C"\n'
         '[flight]\nsource="movements"\nkey="M"\n[resource]\ntype="T"\ncode="C"\n',
         "resource.fields must map"),
    ],
)  # fmt: skip
def test_bad_mappings_are_named(tmp_path: Path, text_: str, fragment: str) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text(text_)
    with pytest.raises(InvalidMapping, match=fragment):
        TableMapping.load(path)


@pytest.mark.parametrize(
    ("text_", "fragment"),
    [
        ("[capture]\nlease_seconds = 0\n", "capture.lease_seconds"),
        ('[capture.sources.a]\nkind = "kafka"\nurl = "x"\n', "capture.sources.a.kind"),
        ('[capture.sources.a]\nkind = "logical"\n', "exactly one of url and url_env"),
        ('[capture.sources.a]\nurl = "x"\nslot = "Bad-Slot"\n', "capture.sources.a.slot"),
        ("[capture\n", "jetbridge.toml"),
        ("capture = 3\n", "capture must be a table"),
    ],
)
def test_bad_capture_settings_are_named(tmp_path: Path, text_: str, fragment: str) -> None:
    path = tmp_path / "jetbridge.toml"
    path.write_text(text_)
    with pytest.raises(InvalidCaptureSettings, match=fragment):
        load_capture_settings(path)


def test_capture_settings_from_a_file_and_from_variables(tmp_path: Path) -> None:
    path = tmp_path / "jetbridge.toml"
    path.write_text(
        '[capture]\nlease_seconds = 3\n[capture.sources.main]\nkind = "logical"\n'
        'url_env = "MAIN_AODB_URL"\nmapping = "maps/aodb.toml"\n'
    )
    settings = load_capture_settings(path, aodb_url="sqlite:///aodb.db")
    assert settings.lease_seconds == 3
    assert settings.source("main").mapping == tmp_path / "maps" / "aodb.toml"
    assert settings.source("aodb").database_url() == "sqlite:///aodb.db"
    with pytest.raises(InvalidCaptureSettings, match="MAIN_AODB_URL is not set"):
        settings.source("main").database_url()
    with pytest.raises(InvalidCaptureSettings, match="'other' is not configured"):
        settings.source("other")


def test_capture_names_an_unknown_source_before_connecting(tmp_path: Path) -> None:
    settings = tmp_path / "jetbridge.toml"
    settings.write_text('[capture.sources.main]\nkind = "logical"\nurl_env = "NOT_SET_ANYWHERE"\n')
    env = {
        **os.environ,
        "JETBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'jb.db'}",
        "JETBRIDGE_DATA_DIR": str(tmp_path),
    }
    env.pop("JETBRIDGE_AODB_URL", None)
    command = [sys.executable, "-m", "jetbridge.cli", "capture", "--settings", str(settings)]
    unknown = subprocess.run(
        [*command, "--source", "other"], env=env, capture_output=True, text=True, timeout=120
    )
    assert unknown.returncode == 2
    assert "capture source 'other' is not configured (configured: main)" in unknown.stderr
    assert not (tmp_path / "jb.db").exists()


def test_a_batch_publishes_its_events_in_the_order_of_its_changes(
    postgres_url: str, sqlite_url: str
) -> None:
    """Changes read in one batch append their events together, in commit order, each once;
    a removal in the middle of a batch comes after the updates before it."""
    legacy = create_database_engine(postgres_url)
    execute(legacy, ARRIVALS)
    flights = hub(sqlite_url)
    mapping = TableMapping.load(MAPPINGS / "arrivals.toml")
    source = open_source(
        "logical", url=postgres_url, engine=legacy, mapping=mapping,
        slot=f"jb_batch_{uuid.uuid4().hex[:6]}",
    )  # fmt: skip
    runner = CdcRunner(source, flights, name="arrivals")
    try:
        execute(
            legacy,
            'INSERT INTO "ARRIVALS" VALUES (1, \'LH\', \'1188\', \'2026-11-24\', \'FRA\', '
            "'SCHEDULED', :sta, NULL, NULL, NULL, '1', NULL, NULL, :now)",
            sta=datetime(2026, 11, 24, 9, 0), now=NOW,
        )  # fmt: skip
        for stand in ("A1", "A2", "A3"):
            execute(legacy, 'UPDATE "ARRIVALS" SET "STAND" = :s WHERE "ARR_ID" = 1', s=stand)
        execute(legacy, 'DELETE FROM "ARRIVALS"')
        execute(
            legacy,
            'INSERT INTO "ARRIVALS" VALUES (2, \'LH\', \'1190\', \'2026-11-24\', \'FRA\', '
            "'SCHEDULED', :sta, NULL, NULL, NULL, '1', 'B7', NULL, :now)",
            sta=datetime(2026, 11, 24, 11, 0), now=NOW,
        )  # fmt: skip
        assert runner.step() == 6  # the whole batch at once
        assert runner.step() == 0
        with flights.backbone.reading() as conn:
            stored = flights.backbone.log.read(conn, bus="default", after=0, limit=100)
        seen = [(e.event_id.split(":")[0], e.event_id.split(":", 1)[1]) for e in stored]
        first = [what for key, what in seen if key == "LH1188-2026-11-24-FRA-ZRH"]
        updates = [what for what in first if what.endswith(":flight.updated")]
        assert updates == [f"{v}:flight.updated" for v in range(1, 5)]  # each change once
        assert first[-1] == "5:flight.removed"
        removed_at = seen.index(("LH1188-2026-11-24-FRA-ZRH", "5:flight.removed"))
        later = [key for key, _ in seen[removed_at + 1 :]]
        assert later and set(later) == {"LH1190-2026-11-24-FRA-ZRH"}
        assert [e.seq for e in stored] == sorted(e.seq for e in stored)
    finally:
        assert isinstance(runner.source, LogicalSource)
        runner.source.capture.drop()
        legacy.dispose()
