"""Bounds on feed messages: how many flight legs one message may change and how long a period may
run; a message over a bound is refused whole, counted before anything is built."""

from __future__ import annotations

import re
import tracemalloc
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jetbridge.flights.feeds.aidx import parse_aidx
from jetbridge.flights.feeds.asm import parse_asm
from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.feeds.limits import FeedLimits
from jetbridge.flights.feeds.mvt import parse_mvt
from jetbridge.flights.feeds.schedule_dates import Period

RECEIVED = datetime(2026, 3, 20, 7, 50, tzinfo=UTC)
LEG = """<FlightLeg><LegIdentifier><Airline>LX</Airline><FlightNumber>{}</FlightNumber>
<DepartureAirport>ZRH</DepartureAirport><ArrivalAirport>LHR</ArrivalAirport>
<OriginDate>2026-11-24</OriginDate></LegIdentifier><LegData/></FlightLeg>"""
NOTIF = (
    '<IATA_AIDX_FlightLegNotifRQ TimeStamp="2026-11-24T06:00:00Z">{}</IATA_AIDX_FlightLegNotifRQ>'
)


def amplifying_ssm(flights: int, periods: int) -> str:
    """A short SSM whose every period line applies to every flight line before it."""
    lines = ["SSM", "UTC", "NEW"]
    lines += [f"LX{n}" for n in range(1, flights + 1)]
    lines += ["01APR26 31OCT26 1234567"] * periods
    lines += ["J 320", "ZRH0640 CDG0800"]
    return "\n".join(lines)


def test_an_amplifying_ssm_is_refused_without_building_its_flights() -> None:
    text = amplifying_ssm(1000, 2000)
    assert len(text.encode()) < 64_000
    tracemalloc.start()
    try:
        with pytest.raises(ParseError) as caught:
            parse_asm(text, received_at=RECEIVED, file="push")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert "JETBRIDGE_FEED_MAX_FLIGHTS_PER_MESSAGE" in message
    assert f"would change {1000 * 2000 * 214} flight legs, more than the 2000" in message
    assert message.startswith("push:line 4: ")  # the first flight line already goes over
    assert peak < 30_000_000  # 428 million legs, had they been built, would not fit


def test_the_bound_counts_dates_times_legs_and_is_inclusive() -> None:
    text = "SSM\nNEW\nLX1\nLX2\n01APR26 30APR26 1357\nZRH0640 CDG0800\nCDG0900 LHR0930"
    # 1 to 30 April 2026 holds 17 Mondays, Wednesdays, Fridays and Sundays; two flights, two legs
    assert len(parse_asm(text, received_at=RECEIVED, limits=FeedLimits(max_flights=68))) == 68
    with pytest.raises(ParseError, match=r"line 4: the message would change 68 flight legs, "):
        parse_asm(text, received_at=RECEIVED, limits=FeedLimits(max_flights=67))


def test_the_count_runs_over_every_message_and_sub_message_of_a_push() -> None:
    one = "ASM\nNEW\nLX1/01APR26 02APR26\nZRH0640 CDG0800\n//\nCNL\nLX2/03APR26 ZRH/CDG/LHR"
    text = f"{one}\nNNNN\n{one}"
    assert len(parse_asm(text, received_at=RECEIVED, limits=FeedLimits(max_flights=8))) == 8
    with pytest.raises(ParseError, match=r"line 15: .* 8 flight legs, more than the 7 .* 'LX2/"):
        parse_asm(text, received_at=RECEIVED, limits=FeedLimits(max_flights=7))


def test_a_period_may_cover_at_most_the_configured_days() -> None:
    within = "SSM\nNEW\nLX1\n01APR26 16NOV26 1\nZRH0640 CDG0800"  # 230 days, both included
    assert parse_asm(within, received_at=RECEIVED)
    with pytest.raises(ParseError) as caught:
        parse_asm(within.replace("16NOV26", "17NOV26"), received_at=RECEIVED, file="ssm.txt")
    assert str(caught.value) == (
        "ssm.txt:line 4: the period covers 231 days, more than the 230 a period may cover "
        "(JETBRIDGE_FEED_MAX_PERIOD_DAYS) at '01APR26 17NOV26 1'"
    )
    with pytest.raises(ParseError, match="covers 230 days, more than the 7"):
        parse_asm(within, received_at=RECEIVED, limits=FeedLimits(max_period_days=7))


def test_a_period_ending_on_29_february_before_it_begins_is_refused() -> None:
    with pytest.raises(ParseError, match="a period must not end before it begins at '29FEB'"):
        parse_asm(
            "SSM\nNEW\nLX1\n01MAR28 29FEB 1\nZRH0640 CDG0800",
            received_at=datetime(2028, 3, 1, tzinfo=UTC),
        )


def test_mvt_files_with_more_messages_than_allowed_are_refused() -> None:
    mvt = "MVT\nLX318/24.HBJDA.ZRH\nAD0740/0750\n"
    text = mvt * 3
    assert len(parse_mvt(text, received_at=RECEIVED, limits=FeedLimits(max_flights=3))) == 3
    with pytest.raises(ParseError) as caught:
        parse_mvt(text, received_at=RECEIVED, file="f", limits=FeedLimits(max_flights=2))
    assert str(caught.value).startswith(
        "f:line 7: the message would change 3 flight legs, more than the 2"
    )


def test_aidx_documents_with_more_legs_than_allowed_are_refused() -> None:
    document = NOTIF.format("".join(LEG.format(n) for n in range(1, 4)))
    assert len(parse_aidx(document, limits=FeedLimits(max_flights=3))) == 3
    with pytest.raises(ParseError) as caught:
        parse_aidx(document, limits=FeedLimits(max_flights=2))
    assert "IATA_AIDX_FlightLegNotifRQ/FlightLeg[3]: the message would change 3" in str(
        caught.value
    )


@given(
    first=st.dates(min_value=date(2000, 1, 1), max_value=date(2098, 1, 1)),
    span=st.integers(min_value=0, max_value=400),
    weekdays=st.frozensets(st.integers(min_value=1, max_value=7), min_size=1),
    weeks=st.integers(min_value=1, max_value=9),
)
def test_a_period_counts_exactly_the_dates_it_lists(
    first: date, span: int, weekdays: frozenset[int], weeks: int
) -> None:
    period = Period(first, first + timedelta(days=span), weekdays, weeks)
    assert period.count() == len(period.dates())


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FeedLimits(max_flights=0)


def leg(identifier: str = "", data: str = "") -> str:
    return NOTIF.format(
        "<FlightLeg><LegIdentifier><Airline>LX</Airline><FlightNumber>1</FlightNumber>"
        "<DepartureAirport>ZRH</DepartureAirport><ArrivalAirport>LHR</ArrivalAirport>"
        f"<OriginDate>2026-11-24</OriginDate>{identifier}</LegIdentifier>"
        f"<LegData>{data}</LegData></FlightLeg>"
    )


def test_aidx_repeat_numbers_run_from_1_to_100() -> None:
    (update,) = parse_aidx(leg("<RepeatNumber>100</RepeatNumber>"))
    assert update.identity.key.endswith("-R99")
    for value in ("101", "1234567", "9" * 5000):
        with pytest.raises(ParseError, match=r"LegIdentifier/repeat_number: .*from"):
            parse_aidx(leg(f"<RepeatNumber>{value}</RepeatNumber>"))


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        (
            leg().replace("2026-11-24</OriginDate>", "9999-12-31</OriginDate>"),
            "origin_date: 9999-12-31 is not between 1900-01-01 and 9998-12-31",
        ),
        (
            leg().replace('"2026-11-24T06:00:00Z"', '"0001-01-01T00:00:00+14:00"'),
            "@TimeStamp: time: 0001-01-01T00:00:00+14:00 is not between",
        ),
        (
            leg().replace("TimeStamp=", f'SequenceNmbr="{"9" * 19}" TimeStamp='),
            "SequenceNmbr: at most 18 digits",
        ),
    ],
)  # fmt: skip
def test_aidx_values_out_of_range_are_parse_errors(document: str, fragment: str) -> None:
    with pytest.raises(ParseError, match=re.escape(fragment)):
        parse_aidx(document)


@pytest.mark.parametrize(
    ("document", "path"),
    [
        (
            leg(data='<OperationTime OperationQualifier="OFB" TimeType="EST">'
                "9999-12-31T23:59:00-14:00</OperationTime>"),
            "LegData/OperationTime[@OperationQualifier='OFB'][@TimeType='EST']",
        ),
        (
            leg(data="<IrregularityDelay><ReasonCode>93</ReasonCode>"
                f"<Duration>PT{'9' * 400}M</Duration></IrregularityDelay>"),
            "LegData/IrregularityDelay[1]/Duration",
        ),
        (
            leg(data="<IrregularityDelay><ReasonCode>93</ReasonCode>"
                "<Duration>\N{SUPERSCRIPT TWO}</Duration></IrregularityDelay>"),
            "LegData/IrregularityDelay[1]/Duration",
        ),
    ],
)  # fmt: skip
def test_aidx_values_out_of_range_are_kept_not_applied(document: str, path: str) -> None:
    (update,) = parse_aidx(document)
    assert path in update.unknown
    assert len(update.unknown[path]) <= 200
    assert "times.off_block.estimated" not in update.fields
    assert update.fields.get("delays.0.minutes") is None
