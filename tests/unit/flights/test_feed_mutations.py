"""Mangled messages: every sample, corrupted at random (seeded), either parses or is refused
with a ParseError; no other exception escapes a parser, so a live feed never stops on one."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jetbridge.flights.feeds.aidx import parse_aidx
from jetbridge.flights.feeds.asm import parse_asm
from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.feeds.mvt import parse_mvt

DATA = Path(__file__).parent / "data"
RECEIVED = datetime(2026, 11, 24, 7, 50, tzinfo=UTC)
SAMPLES = sorted(p for p in [*DATA.glob("*.*"), *(DATA / "real").glob("*.*")] if p.suffix != ".md")


def mangle(data: bytes, rng: random.Random) -> bytes:
    """A few random edits: overwrite, cut, insert the sample's own bytes, or repeat a slice."""
    mangled = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(len(mangled)) if mangled else 0
        kind = rng.random()
        if kind < 0.4 and mangled:
            mangled[at] = rng.randrange(256)
        elif kind < 0.6:
            del mangled[at : at + rng.randint(1, 20)]
        elif kind < 0.8:
            mangled[at:at] = bytes(rng.choice(data) for _ in range(rng.randint(1, 10)))
        else:
            start = rng.randrange(len(mangled)) if mangled else 0
            mangled[at:at] = mangled[start : start + rng.randint(1, 30)]
    return bytes(mangled)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_a_mangled_message_parses_or_is_refused_with_a_parse_error(sample: Path) -> None:
    rng = random.Random(sample.name)
    data = sample.read_bytes()
    refused = 0
    for _ in range(1000):
        mangled = mangle(data, rng)
        try:
            if sample.suffix == ".xml":
                parse_aidx(mangled)
            elif "mvt" in sample.name:
                parse_mvt(mangled, received_at=RECEIVED)
            else:
                parse_asm(mangled, received_at=RECEIVED)
        except ParseError as error:
            refused += 1
            assert str(error), "a refusal names what was wrong"
    assert refused > 0  # the edits do break messages: the test exercises the error paths
