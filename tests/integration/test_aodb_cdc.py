"""The AODB simulator and SQL change capture: no change missed, restart resumes, on SQLite and PG."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy import text as sa_text

from jetbridge.aodb.cdc import (
    DEFAULT_MAPPING,
    InvalidMapping,
    Position,
    SchemaChanged,
    SqlChangeCapture,
    TableMapping,
)
from jetbridge.aodb.legacy import movements
from jetbridge.aodb.simulator import TERMINALS, AodbSimulator, plan_day
from jetbridge.storage.db import create_database_engine


def test_plan_is_seeded_and_realistic() -> None:
    plan = plan_day(seed=3, day=date(2026, 11, 24), rotations=200)
    again = plan_day(seed=3, day=date(2026, 11, 24), rotations=200)
    assert [c.values for c in plan.changes] == [c.values for c in again.changes]
    assert len(plan.movements) == 400
    statuses = {c.values.get("FLT_STATUS") for c in plan.changes}
    assert {"BRD", "FCL", "GCL", "DEP", "ARR", "DIV"} <= statuses
    assert any("DLY_CODE1" in c.values for c in plan.changes)
    assert any(m.codeshares for m in plan.movements)
    assert plan.changes == sorted(plan.changes)


def test_terminals_come_from_the_piers() -> None:
    plan = plan_day(seed=3, day=date(2026, 11, 24), rotations=100)
    departures: dict[int, str] = {}
    gates: dict[int, str] = {}
    for change in plan.changes:
        departures.update(
            {change.mvt_id: change.values["TERMINAL"]} if "TERMINAL" in change.values else {}
        )
        gates.update({change.mvt_id: change.values["GATE"]} if "GATE" in change.values else {})
    assert set(departures.values()) == {"1", "2"}
    assert all(departures[key] == TERMINALS[gate[0]] for key, gate in gates.items())
    arrivals = {c.values["ARR_TERMINAL"] for c in plan.changes if "ARR_TERMINAL" in c.values}
    assert arrivals == {"1", "2"}


def latest_versions(capture: SqlChangeCapture) -> dict[int, int]:
    with capture.engine.connect() as conn:
        rows = conn.execute(select(movements.c.MVT_ID, movements.c.ROW_VER))
        return {row[0]: row[1] for row in rows}


def test_capture_sees_every_change_under_concurrent_writes(database_url: str) -> None:
    engine = create_database_engine(database_url)
    plan = plan_day(seed=11, day=date(2026, 11, 24), rotations=40)
    simulator = AodbSimulator(engine, plan, speed=1e9)
    simulator.install()
    capture = SqlChangeCapture(engine, TableMapping.load(DEFAULT_MAPPING))
    capture.mapping = TableMapping.from_dict(
        {**_raw_mapping(), "source": {**_raw_mapping()["source"], "lag_seconds": 1.0}}
    )
    seen: dict[int, int] = {}
    position = Position()
    half = len(plan.changes) // 2
    writers = [
        threading.Thread(target=lambda part=part: [simulator.apply(c) for c in part])
        for part in (plan.changes[:half], plan.changes[half:])
    ]
    for writer in writers:
        writer.start()
    while any(w.is_alive() for w in writers):
        changes, position = capture.poll(position)
        for change in changes:
            seen[change.key] = max(seen.get(change.key, 0), change.row_version or 0)
    for _ in range(3):
        changes, position = capture.poll(position)
        for change in changes:
            seen[change.key] = max(seen.get(change.key, 0), change.row_version or 0)
    assert seen == latest_versions(capture)
    engine.dispose()


def _raw_mapping() -> dict[str, dict[str, object]]:
    import tomllib

    return tomllib.loads(DEFAULT_MAPPING.read_text())


def test_position_survives_a_restart(sqlite_url: str) -> None:
    engine = create_database_engine(sqlite_url)
    plan = plan_day(seed=5, day=date(2026, 11, 24), rotations=5)
    simulator = AodbSimulator(engine, plan, speed=1e9)
    simulator.install()
    capture = SqlChangeCapture(engine, TableMapping.load(DEFAULT_MAPPING))
    first, position = capture.poll(Position())
    assert len(first) == 10
    saved = position.to_json()
    nothing, _ = SqlChangeCapture(engine, capture.mapping).poll(Position.from_json(saved))
    assert nothing == []
    simulator.apply(plan.changes[0])
    (changed,), _ = SqlChangeCapture(engine, capture.mapping).poll(Position.from_json(saved))
    assert changed.key == plan.changes[0].mvt_id
    assert changed.identity["departure_airport"] in {"ZRH"} | {m.departure for m in plan.movements}
    engine.dispose()


def test_translation_maps_columns_and_status_codes(sqlite_url: str) -> None:
    engine = create_database_engine(sqlite_url)
    plan = plan_day(seed=5, day=date(2026, 11, 24), rotations=2)
    AodbSimulator(engine, plan).install()
    changes, _ = SqlChangeCapture(engine, TableMapping.load(DEFAULT_MAPPING)).poll(Position())
    change = changes[0]
    assert change.fields["status"] == "scheduled"
    assert change.fields["times.off_block.scheduled"].tzinfo is not None
    assert set(change.identity) == {
        "airline",
        "flight_number",
        "origin_date",
        "departure_airport",
        "arrival_airport",
    }
    engine.dispose()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[source]\nname = 1", "source.name"),
        ("nonsense = [", "mapping.toml"),
        (
            '[source]\nname="a"\ntable="t"\nprimary_key="k"\nchanged_at="c"\n[identity]\nairline="A"',
            "identity.",
        ),
    ],
)
def test_bad_mapping_files_are_named(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text(text)
    with pytest.raises(InvalidMapping, match=fragment.replace(".", r"\.")):
        TableMapping.load(path)


def test_a_missing_field_column_is_reported_and_the_rest_captured(sqlite_url: str) -> None:
    engine = create_database_engine(sqlite_url)
    AodbSimulator(engine, plan_day(seed=1, day=date(2026, 11, 24), rotations=1)).install()
    raw = _raw_mapping()
    raw["fields"] = {"gate": "NO_SUCH_COLUMN", "terminal": "TERMINAL"}
    capture = SqlChangeCapture(engine, TableMapping.from_dict(raw))
    capture.table()
    (notice,) = capture.watch.drain()
    assert "NO_SUCH_COLUMN" in notice and "not captured" in notice
    assert capture.watch.effective.fields == {"terminal": "TERMINAL"}
    engine.dispose()


def test_a_missing_identity_column_stops_capture_with_a_clear_error(sqlite_url: str) -> None:
    engine = create_database_engine(sqlite_url)
    AodbSimulator(engine, plan_day(seed=1, day=date(2026, 11, 24), rotations=1)).install()
    raw = _raw_mapping()
    raw["identity"] = {**raw["identity"], "airline": "NO_SUCH_COLUMN"}
    with pytest.raises(SchemaChanged, match="NO_SUCH_COLUMN"):
        SqlChangeCapture(engine, TableMapping.from_dict(raw)).table()
    engine.dispose()


def test_a_column_dropped_while_capturing_is_reported_not_a_crash(sqlite_url: str) -> None:
    engine = create_database_engine(sqlite_url)
    plan = plan_day(seed=1, day=date(2026, 11, 24), rotations=1)
    simulator = AodbSimulator(engine, plan, speed=1e9)
    simulator.install()
    capture = SqlChangeCapture(engine, TableMapping.load(DEFAULT_MAPPING))
    simulator.apply(plan.changes[0])
    changes, position = capture.poll(Position())
    assert changes and capture.watch.drain() == []
    with engine.begin() as conn:
        conn.execute(sa_text('ALTER TABLE "FLIGHT_MOVEMENTS" DROP COLUMN "BELT"'))
        conn.execute(sa_text('ALTER TABLE "FLIGHT_MOVEMENTS" ADD COLUMN "CAROUSEL" TEXT'))
    assert position.changed_at is not None
    later = (position.changed_at + timedelta(minutes=1)).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(
            sa_text('UPDATE "FLIGHT_MOVEMENTS" SET "ROW_VER" = "ROW_VER" + 1, "LAST_UPD" = :t'),
            {"t": later},
        )
    changes, _ = capture.poll(position)
    assert changes and all("baggage_belt" not in c.fields for c in changes)
    (notice, missing) = capture.watch.drain()
    assert "new column CAROUSEL" in notice and "column BELT gone" in notice
    assert "BELT" in missing
    engine.dispose()
