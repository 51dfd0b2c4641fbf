"""AIDX in the forms AODBs really send it (see data/real/README.md for each source)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jetbridge.flights.feeds.aidx import parse_aidx

REAL = Path(__file__).parent / "data" / "real"


def fields_of(item: Any) -> dict[str, Any]:
    return dict(item.to_json()["fields"])


def test_aidx_response_in_a_soap_11_envelope_from_an_aodb() -> None:
    first, second = parse_aidx((REAL / "aidx_soap11_response_lcy.xml").read_bytes())
    assert first.identity.key == "MMD5055-2019-11-18-SGD-LCY"
    assert second.identity.key == "AFP0024-2019-12-03-TOJ-LCY"
    # 10:59:35.1977952 at +01:00, seven fraction digits
    assert first.source_time == datetime(2020, 7, 3, 9, 59, 35, 197795, tzinfo=UTC)
    assert fields_of(first) == {
        "times.on_block.scheduled": "2019-11-18T13:00:00Z",
        "times.on_block.estimated": "2019-11-18T12:47:00Z",
        "times.touchdown.actual": "2019-11-18T12:47:00Z",
        "times.on_block.actual": "2019-11-18T12:49:00Z",
        "stand": "MT",
        "arrival_terminal": "MT",
        "baggage_belt": "03",
        "aircraft_type": "DF3",
        "registration": "OYRAB",
        "remarks": "LND",
    }
    assert fields_of(second)["registration"] == "17401"
    assert "baggage_belt" not in fields_of(second)


def test_aidx_response_with_warnings_and_no_leg_changes_nothing() -> None:
    assert parse_aidx((REAL / "aidx_soap11_response_warning_only.xml").read_bytes()) == []


def test_aidx_soap_12_prefixed_with_bom_and_crlf() -> None:
    data = (REAL / "aidx_soap12_prefixed_bom_crlf.xml").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data
    departure, arrival, cancelled, repeat = parse_aidx(data)
    assert departure.identity.key == "LX1612-2026-11-24-ZRH-VIE"  # RepeatNumber 1: first attempt
    assert departure.source_time == datetime(2026, 11, 24, 6, 41, 12, 500000, tzinfo=UTC)
    assert departure.sequence == 20881
    assert fields_of(departure) == {
        "status": "boarding",  # OP and BST: the one that says most
        "times.off_block.scheduled": "2026-11-24T07:00:00Z",
        "times.off_block.estimated": "2026-11-24T07:12:00Z",  # RepeatIndex 4 beats 2
        "times.off_block.target": "2026-11-24T07:10:00Z",
        "times.boarding_start.actual": "2026-11-24T06:35:00Z",
        "times.on_block.scheduled": "2026-11-24T08:25:00Z",
        "gate": "A54",  # the actual resource replaces the planned A52
        "stand": "A54",
        "terminal": "1",
        "arrival_terminal": "3",
        "check_in_counters": "1-24,31",
        "aircraft_type": "BCS1",  # the ICAO type
        "registration": "HBJBA",
        "codeshares": "OS7165,LH5612",
        "delays.0.code": "89",
        "delays.0.minutes": 12,
        "remarks": "BOARDING AT GATE A54",
    }
    assert arrival.identity.key == "U21034Z-2026-11-24-LGW-ZRH"  # operational suffix
    assert fields_of(arrival) == {
        "status": "arrived",
        "times.on_block.scheduled": "2026-11-24T06:50:00Z",
        "times.touchdown.actual": "2026-11-24T06:41:30Z",
        "times.on_block.actual": "2026-11-24T06:47:00Z",
        "stand": "E63",
        "arrival_terminal": "2",
        "baggage_belt": "21",  # RepeatIndex order
        "aircraft_type": "32N",  # the IATA subtype when no ICAO type is given
        "registration": "GUZHA",
    }
    assert fields_of(cancelled) == {"status": "cancelled"}
    assert repeat.identity.key == "LX0318-2026-11-24-ZRH-LHR-R1"


@pytest.mark.parametrize(
    ("name", "remark"),
    [
        ("aidx_iso8859_1.xml", "Verspätung wegen Enteisung, Abflug ca. 08:35"),
        ("aidx_declared_iso8859_1_sent_utf8.xml", "Enteisung in Zürich, Abflug ca. 08:35"),
    ],
)
def test_aidx_in_the_encoding_the_bytes_are_in(name: str, remark: str) -> None:
    (update,) = parse_aidx((REAL / name).read_bytes())
    assert fields_of(update) == {"remarks": remark}
    assert update.source_time == datetime(2026, 11, 24, 5, 58, tzinfo=UTC)


@pytest.mark.parametrize(
    "name",
    [
        "aidx_soap11_response_lcy.xml",
        "aidx_soap12_prefixed_bom_crlf.xml",
        "aidx_iso8859_1.xml",
    ],
)
def test_text_and_bytes_read_alike(name: str) -> None:
    data = (REAL / name).read_bytes()
    as_text = data.decode("latin-1" if "8859" in name else "utf-8-sig")
    assert [u.to_json() for u in parse_aidx(as_text)] == [u.to_json() for u in parse_aidx(data)]
