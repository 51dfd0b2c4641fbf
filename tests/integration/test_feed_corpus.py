"""Messages published by airports, airlines, AODB vendors and open-source projects (see
tests/data/feeds/SOURCES.md), applied to the hub: each is accepted, or refused only for the
reason its row expects, and what each says lands on its flight (understood values as fields,
the rest kept raw with a warning). Prints the counts per message type and per source."""

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
ROW = re.compile(r"^\| `([^`]+)` \| (\w+) \| (\w+) \| .* \| (accepted|refused: [^|]+) \| (\S+) \|$")
SEEDED = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Entry:
    file: str
    type: str
    source: str
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
            file, kind, source, expect, received = found.groups()
            rows.append(Entry(file, kind, source, expect.strip(), datetime.fromisoformat(received)))
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
    counts: Counter[tuple[str, str, str]] = Counter()
    for entry in entries():
        data = (CORPUS / entry.file).read_bytes()
        if entry.expect.startswith("refused:"):
            with pytest.raises(ParseError) as refused:
                parse(entry.kind, data, received_at=entry.received, file=entry.file)
            assert entry.expect.removeprefix("refused:").strip() in str(refused.value), entry.file
            counts[(entry.type, entry.source, "refused")] += 1
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
        counts[(entry.type, entry.source, "accepted")] += 1
    print_counts(counts)
    assert sum(counts.values()) == len(entries())


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


def print_counts(counts: Counter[tuple[str, str, str]]) -> None:
    by_type: Counter[str] = Counter()
    by_source: Counter[str] = Counter()
    print("\n| type | source | accepted | refused |\n|---|---|---|---|")
    for kind, source in sorted({(k, s) for k, s, _ in counts}):
        accepted, refused = counts[(kind, source, "accepted")], counts[(kind, source, "refused")]
        by_type[kind] += accepted + refused
        by_source[source] += accepted + refused
        print(f"| {kind} | {source} | {accepted} | {refused} |")
    print("\nper type:", dict(sorted(by_type.items())))
    print("per source:", dict(sorted(by_source.items())))
    print("messages:", sum(counts.values()))
