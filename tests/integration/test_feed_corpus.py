"""Messages published by airports, airlines, AODB vendors and open-source projects (see
tests/data/feeds/SOURCES.md), applied to the hub: each is accepted, or refused only for the
reason its row expects, and what each says lands on its flight (understood values as fields,
the rest kept raw with a warning). Prints the counts of real and synthetic messages per message
type and per source, and requires at least 60 that real systems sent."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.feeds.telex import FeedUpdate
from jetbridge.flights.hub import FlightHub, load_state
from jetbridge.flights.ingest import ingest as ingest_message
from jetbridge.flights.ingest import parse
from jetbridge.flights.merge import Update
from jetbridge.flights.model import FlightIdentity, normalise_value

CORPUS = Path(__file__).parents[1] / "data" / "feeds"
ROW = re.compile(
    r"^\| `([^`]+)` \| (\w+) \| (\w+) \| (real|synthetic) \| .* \| (accepted|refused: [^|]+) \| (\S+) \|$"
)
MIN_REAL = 60
SEEDED = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Entry:
    file: str
    type: str
    source: str
    sent_by: str
    expect: str
    received: datetime

    @property
    def kind(self) -> str:
        return self.file.split("/", 1)[0]


def entries() -> list[Entry]:
    rows = []
    for line in (CORPUS / "SOURCES.md").read_text().splitlines():
        found = ROW.match(line)
        if found:
            file, kind, source, sent_by, expect, received = found.groups()
            rows.append(
                Entry(file, kind, source, sent_by, expect.strip(), datetime.fromisoformat(received))
            )
    return rows


@pytest.fixture
def hub(sqlite_url: str) -> Iterator[FlightHub]:
    app = create_app(Settings(database_url=sqlite_url, run_workers=False))
    with TestClient(app):
        yield FlightHub(app.state.platform.backbone)


def test_every_message_has_its_source_and_every_source_its_message() -> None:
    listed = {entry.file for entry in entries()}
    present = {
        str(path.relative_to(CORPUS))
        for path in CORPUS.rglob("*")
        if path.is_file() and path.name != "SOURCES.md"
    }
    assert listed == present


def identity_of(item: Update | FeedUpdate) -> FlightIdentity:
    if isinstance(item, Update):
        return item.identity
    return FlightIdentity.create(
        airline=item.airline,
        flight_number=item.flight_number,
        origin_date=item.origin_date,
        departure_airport=item.departure_airport or "ZZZ",
        arrival_airport=item.arrival_airport or "ZZZ",
    )


def test_the_corpus_is_accepted_and_lands_on_its_flights(hub: FlightHub) -> None:
    counts: Counter[tuple[str, str, str, str]] = Counter()
    for entry in entries():
        data = (CORPUS / entry.file).read_bytes()
        if entry.expect.startswith("refused:"):
            with pytest.raises(ParseError) as refused:
                parse(entry.kind, data, received_at=entry.received, file=entry.file)
            assert entry.expect.removeprefix("refused:").strip() in str(refused.value), entry.file
            counts[(entry.type, entry.source, entry.sent_by, "refused")] += 1
            continue
        items = parse(entry.kind, data, received_at=entry.received, file=entry.file)
        for item in items:
            if isinstance(item, FeedUpdate) and not item.complete():
                # The schedule the hub would know: a telex names one airport of a known flight.
                seed = Update(identity_of(item), "schedule", SEEDED, {"status": "scheduled"})
                hub.apply_all([seed])
        result = ingest_message(
            hub, entry.kind, data, received_at=entry.received, origin=entry.file
        )
        assert result.refused == [], (entry.file, result.refused)
        assert len(result.warnings) == sum(len(item.unknown) for item in items), entry.file
        for item in items:
            landed(hub, entry.file, item)
        counts[(entry.type, entry.source, entry.sent_by, "accepted")] += 1
    print_counts(counts)
    assert sum(counts.values()) == len(entries())
    real = sum(n for (_, _, sent_by, _), n in counts.items() if sent_by == "real")
    assert real >= MIN_REAL, f"only {real} messages sent by real systems"


# What the messages added with the second sources say, value by value: the flight (airline,
# number, day, the airports it names) and the fields read from it.
EXPECTED: dict[str, tuple[tuple[str, str, str, str | None, str | None], dict[str, object]]] = {
    "mvt/awery_xrc0001_departure.txt": (
        ("XRC", "0001", "2025-06-10", "CDG", "TUN"),
        {
            "registration": "TSICB",
            "times.off_block.actual": "2025-06-10T05:05:00+00:00",
            "times.take_off.actual": "2025-06-10T05:22:00+00:00",
            "times.on_block.estimated": "2025-06-10T07:25:00+00:00",
        },
    ),
    "mvt/awery_xrc0002_arrival.txt": (
        ("XRC", "0002", "2025-06-07", None, "CDG"),
        {
            "registration": "TSICD",
            "times.touchdown.actual": "2025-06-07T08:45:00+00:00",
            "times.on_block.actual": "2025-06-07T09:00:00+00:00",
        },
    ),
    "mvt/awery_xrc0003_arrival.txt": (
        ("XRC", "0003", "2025-06-09", None, "CDG"),
        {
            "registration": "TSICB",
            "times.touchdown.actual": "2025-06-09T17:18:00+00:00",
            "times.on_block.actual": "2025-06-09T17:27:00+00:00",
        },
    ),
    "mvt/awery_xrc0004_departure.txt": (
        ("XRC", "0004", "2025-06-10", "CDG", "TUN"),
        {
            "registration": "TSICD",
            "times.off_block.actual": "2025-06-10T09:09:00+00:00",
            "times.take_off.actual": "2025-06-10T09:28:00+00:00",
            "times.on_block.estimated": "2025-06-10T11:30:00+00:00",
        },
    ),
    "mvt/awery_xrc0005_departure.txt": (
        ("XRC", "0005", "2025-06-05", "CDG", "TUN"),
        {
            "registration": "TSICD",
            "times.off_block.actual": "2025-06-05T04:46:00+00:00",
            "times.take_off.actual": "2025-06-05T04:59:00+00:00",
            "times.on_block.estimated": "2025-06-05T07:00:00+00:00",
        },
    ),
    "mvt/mvt_parser_readme_ba100_departure.txt": (
        ("BA", "100", "2025-06-27", "LHR", "CDG"),
        {
            "registration": "PPVMU",
            "times.off_block.actual": "2025-06-27T12:00:00+00:00",
            "times.take_off.actual": "2025-06-27T12:10:00+00:00",
            "delays.0.code": "72",
            "delays.0.minutes": 15,
            "remarks": "DEICING",
        },
    ),
    "mvt/mvt_parser_readme_ba100_elements.txt": (
        ("BA", "100", "2025-06-27", "LTN", "CDG"),
        {
            "registration": "PPVMU",
            "times.off_block.actual": "2025-06-27T12:00:00+00:00",
            "unknown": ["MVT/CR", "MVT/DL", "MVT/FL", "MVT/RC", "MVT/TO"],
        },
    ),
}


NOIDA = {
    "aidx/noida_aodb_sg1225_dxn_hsr_chc.xml": (
        ("SG", "1225", "2024-11-11", "DXN", "HSR"),
        {
            "times.off_block.scheduled": "2024-11-11T03:50:00+00:00",
            "terminal": "T1",
            "aircraft_type": "32N",
            "unknown": ["LegData/OperationalStatus[.='CHC']"],
            "source_time": "2024-11-11T09:02:30.891000+00:00",
        },
    ),
    "aidx/noida_aodb_sg1130_dxn_amd_14nov.xml": (
        ("SG", "1130", "2024-11-14", "DXN", "AMD"),
        {"status": "scheduled", "times.off_block.scheduled": "2024-11-14T01:30:00+00:00"},
    ),
    "aidx/noida_aodb_sg1080_maa_dxn_12nov.xml": (
        ("SG", "1080", "2024-11-12", "MAA", "DXN"),
        {
            "status": "scheduled",
            "times.on_block.scheduled": "2024-11-11T19:40:00+00:00",
            "arrival_terminal": "T1",
        },
    ),
    "aidx/noida_aodb_sg1080_maa_dxn_13nov.xml": (
        ("SG", "1080", "2024-11-13", "MAA", "DXN"),
        {"times.on_block.scheduled": "2024-11-12T19:40:00+00:00"},
    ),
    "aidx/noida_aodb_sg1130_dxn_amd_12nov.xml": (
        ("SG", "1130", "2024-11-12", "DXN", "AMD"),
        {"times.off_block.scheduled": "2024-11-12T01:30:00+00:00", "terminal": "T1"},
    ),
    "aidx/noida_aodb_6e7624_dxn_idr_counters.xml": (
        ("6E", "7624", "2024-11-11", "DXN", "IDR"),
        {"check_in_counters": "101-106", "source_time": "2024-11-11T09:15:57.069000+00:00"},
    ),
    "aidx/noida_aodb_6e1014_dxn_rpr_counters.xml": (
        ("6E", "1014", "2024-11-11", "DXN", "RPR"),
        {"check_in_counters": "101-106"},
    ),
    "aidx/noida_aodb_6e7662_dxn_ded_counters.xml": (
        ("6E", "7662", "2024-11-11", "DXN", "DED"),
        {"check_in_counters": "101-106"},
    ),
    "aidx/noida_aodb_6e1002_dxn_nag_counters.xml": (
        ("6E", "1002", "2024-11-11", "DXN", "NAG"),
        {"check_in_counters": "101-106", "sequence": 127922},
    ),
}
EXPECTED |= NOIDA


@pytest.mark.parametrize("file", sorted(EXPECTED))
def test_each_new_message_says_what_it_should(file: str) -> None:
    entry = next(e for e in entries() if e.file == file)
    (item,) = parse(entry.kind, (CORPUS / file).read_bytes(), received_at=entry.received, file=file)
    flight, fields = EXPECTED[file]
    if isinstance(item, Update):
        identity = item.identity
        said: tuple[str, str, str, str | None, str | None] = (
            identity.airline,
            identity.flight_number,
            identity.origin_date.isoformat(),
            identity.departure_airport,
            identity.arrival_airport,
        )
    else:
        said = (
            item.airline,
            item.flight_number,
            item.origin_date.isoformat(),
            item.departure_airport,
            item.arrival_airport,
        )
    assert said == flight
    for name, value in fields.items():
        if name == "source_time":
            assert item.source_time.isoformat() == value
        elif name == "sequence":
            assert isinstance(item, Update) and item.sequence == value
        elif name == "unknown":
            assert sorted(item.unknown) == value
        elif isinstance(value, str) and "T" in value and name.startswith("times."):
            got = item.fields[name]
            assert isinstance(got, datetime) and got.isoformat() == value, name
        else:
            assert item.fields[name] == value, name


def landed(hub: FlightHub, file: str, item: Update | FeedUpdate) -> None:
    """Every field and every kept raw value of `item` is on its flight, unless a newer message
    about the same flight has since replaced it."""
    with hub.backbone.reading() as conn:
        state = load_state(conn, identity_of(item).key)
    assert state is not None, file
    stamp = item.source_time.isoformat()
    for name, value in item.fields.items():
        if value is None or state.provenance[name][1] > stamp:
            continue
        assert state.fields.get(name) == normalise_value(name, value), (file, name)
    for path, raw in item.unknown.items():
        kept = state.unknown[path]
        if kept[1] <= stamp:
            assert kept[2] == raw, (file, path)


def print_counts(counts: Counter[tuple[str, str, str, str]]) -> None:
    by_type: Counter[tuple[str, str]] = Counter()
    by_source: Counter[tuple[str, str]] = Counter()
    print("\n| type | source | real | synthetic | accepted | refused |\n|---|---|---|---|---|---|")
    for kind, source in sorted({(k, s) for k, s, _, _ in counts}):
        row = {key: n for key, n in counts.items() if key[:2] == (kind, source)}
        real = sum(n for key, n in row.items() if key[2] == "real")
        synthetic = sum(n for key, n in row.items() if key[2] == "synthetic")
        accepted = sum(n for key, n in row.items() if key[3] == "accepted")
        refused = sum(n for key, n in row.items() if key[3] == "refused")
        by_type[(kind, "real")] += real
        by_type[(kind, "synthetic")] += synthetic
        by_source[(source, "real")] += real
        by_source[(source, "synthetic")] += synthetic
        print(f"| {kind} | {source} | {real} | {synthetic} | {accepted} | {refused} |")
    print("\nper type (real, synthetic):", _pairs(by_type))
    print("per source (real, synthetic):", _pairs(by_source))
    real = sum(n for (_, sent_by), n in by_type.items() if sent_by == "real")
    print(f"messages: {sum(counts.values())}, real {real}, synthetic {sum(counts.values()) - real}")


def _pairs(counts: Counter[tuple[str, str]]) -> dict[str, tuple[int, int]]:
    names = sorted({name for name, _ in counts})
    return {name: (counts[(name, "real")], counts[(name, "synthetic")]) for name in names}
