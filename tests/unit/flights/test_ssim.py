"""SSIM chapter 7 files: periods and days expand into dated legs in UTC, local operating dates,
codeshares from segment data, and malformed records refused with line, column and token."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.feeds.limits import FeedLimits
from jetbridge.flights.feeds.ssim import parse_ssim
from support.ssim import carrier, header, leg, segment, ssim_file, trailer


def test_a_week_of_daily_legs_in_local_time() -> None:
    legs = parse_ssim(ssim_file(leg()))
    assert [x.origin_date for x in legs] == [date(2026, 12, d) for d in range(1, 8)]
    first = legs[0]
    assert first.departure == datetime(2026, 12, 1, 6, 40, tzinfo=UTC)
    assert first.arrival == datetime(2026, 12, 1, 8, 25, tzinfo=UTC)
    assert (first.airline, first.flight_number, first.aircraft_type) == ("LX", "318", "A320")
    assert (first.terminal, first.arrival_terminal) == ("1", "2")
    assert first.carries_passengers


def test_days_of_operation_and_every_second_week() -> None:
    legs = parse_ssim(
        ssim_file(leg(first="30NOV26", last="27DEC26", days="1 3    ", frequency="2"))
    )
    assert [x.origin_date.isoformat() for x in legs] == [
        "2026-11-30", "2026-12-02", "2026-12-14", "2026-12-16",
    ]  # fmt: skip


def test_utc_mode_and_a_local_date_after_midnight() -> None:
    text = "\n".join([header(), carrier(time_mode="U"),
                      leg(departure="JFK", std="0130", dep_offset="-0500", arrival="ZRH",
                          sta="1500", arr_offset="+0100", first="02DEC26", last="02DEC26"),
                      trailer()])  # fmt: skip
    (only,) = parse_ssim(text)
    assert only.departure == datetime(2026, 12, 2, 1, 30, tzinfo=UTC)
    assert only.origin_date == date(2026, 12, 1)  # 20:30 the evening before in New York


def test_an_overnight_arrival_uses_the_date_variation() -> None:
    (only,) = parse_ssim(ssim_file(leg(
        departure="ZRH", std="2240", arrival="JFK", sta="0140", arr_offset="-0500",
        aircraft="77W", first="01DEC26", last="01DEC26", date_variation="01",
    )))  # fmt: skip
    assert only.arrival == datetime(2026, 12, 2, 6, 40, tzinfo=UTC)
    assert only.aircraft_type == "B77W"


def test_codeshares_from_element_10_and_marketing_duplicates() -> None:
    legs = parse_ssim(ssim_file(
        leg(last="01DEC26"),
        segment("010", "LH 5790/SN 3418"),
        leg(airline="UA", number="9713", last="01DEC26"),
        segment("050", "LX 318", airline="UA", number="9713"),
    ))  # fmt: skip
    assert len(legs) == 1
    assert legs[0].codeshares == ("LH5790", "SN3418", "UA9713")


def test_an_open_ended_period_runs_to_the_horizon_from_its_first_day() -> None:
    legs = parse_ssim(ssim_file(leg(first="01DEC26", last="00XXX00", days="1      ")))
    # Mondays from 1 December 2026 for the default 90 days: up to 28 February 2027.
    assert legs[0].origin_date == date(2026, 12, 7)
    assert legs[-1].origin_date == date(2027, 2, 22)
    assert len(legs) == 12
    short = parse_ssim(
        ssim_file(leg(first="01DEC26", last="00XXX00")),
        limits=FeedLimits(open_period_days=10),
    )
    assert [x.origin_date for x in short] == [date(2026, 12, d) for d in range(1, 11)]
    # The horizon stays within the longest period a file may give.
    capped = parse_ssim(
        ssim_file(leg(first="01DEC26", last="00XXX00")),
        limits=FeedLimits(max_period_days=5, open_period_days=60),
    )
    assert [x.origin_date for x in capped] == [date(2026, 12, d) for d in range(1, 6)]


def test_cargo_legs_are_not_passenger_flights() -> None:
    (only,) = parse_ssim(ssim_file(leg(service="F", last="01DEC26")))
    assert not only.carries_passengers


@pytest.mark.parametrize(
    ("record", "column", "token"),
    [
        (leg(first="31FEB26"), 15, "31FEB26"),
        (leg(first="01XYZ26"), 15, "01XYZ26"),
        (leg(first="07DEC26", last="01DEC26"), 22, "01DEC26"),
        (leg(days="1289   "), 29, "1289   "),
        (leg(days="       "), 29, "       "),
        (leg(std="2460"), 40, "2460"),
        (leg(std="ab12"), 40, "ab12"),
        (leg(dep_offset="+2500"), 48, "+2500"),
        (leg(dep_offset="01:00"), 48, "01:00"),
        (leg(departure="zr1"), 37, "zr1"),
        (leg(aircraft="3\x0120"[:3]), 73, "3\x012"),
        (leg(date_variation="0Z"), 194, "Z"),
        (leg(frequency="7"), 36, "7"),
        (segment("010", "LH 5790"), 3, "LX 03180101"),
    ],
)
def test_malformed_records_name_line_column_and_token(record: str, column: int, token: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_ssim(ssim_file(record), file="winter.ssim")
    assert caught.value.file == "winter.ssim"
    assert caught.value.location == f"line 4, column {column}"
    assert caught.value.token == token


def test_hostile_files_are_refused_whole() -> None:
    with pytest.raises(ParseError, match="record type"):
        parse_ssim(ssim_file("9" + " " * 199))
    with pytest.raises(ParseError, match="200 characters"):
        parse_ssim(ssim_file(leg() + "X"))
    with pytest.raises(ParseError, match="period longer"):
        parse_ssim(ssim_file(leg(first="01JAN26", last="31DEC26")))
    with pytest.raises(ParseError, match="more than the 10"):
        parse_ssim(ssim_file(leg(), leg(number="0320")), limits=FeedLimits(max_flights=10))
    with pytest.raises(ParseError, match="arrival must be after departure"):
        parse_ssim(ssim_file(leg(sta="0600", arr_offset="+0100")))
    with pytest.raises(ParseError, match="codeshare numbers"):
        parse_ssim(ssim_file(leg(), segment("010", "???")))
    assert parse_ssim(b"") == []
