"""AIDX times in local time (TimeType SCL, ESL, ACL) are placed in UTC with the time zone of the
airport where the milestone happens, from the reference data; across the changes of daylight
saving time, and kept raw with the reason where they cannot be placed."""

from __future__ import annotations

from datetime import datetime

import pytest

from jetbridge.flights.feeds.aidx import parse_aidx
from jetbridge.flights.merge import Update

LEG = """<IATA_AIDX_FlightLegNotifRQ xmlns="http://www.iata.org/IATA/2007/00"
 TimeStamp="2026-03-01T06:00:00Z" Version="21.3"><FlightLeg><LegIdentifier>
<Airline>LX</Airline><FlightNumber>16</FlightNumber><DepartureAirport>{dep}</DepartureAirport>
<ArrivalAirport>{arr}</ArrivalAirport><OriginDate>{day}</OriginDate></LegIdentifier>
<LegData>{times}</LegData></FlightLeg></IATA_AIDX_FlightLegNotifRQ>"""


def leg(times: str, *, dep: str = "ZRH", arr: str = "JFK", day: str = "2026-03-29") -> Update:
    (update,) = parse_aidx(LEG.format(dep=dep, arr=arr, day=day, times=times))
    return update


def time(qualifier: str, kind: str, value: str) -> str:
    return (
        f'<OperationTime OperationQualifier="{qualifier}" TimeType="{kind}">{value}</OperationTime>'
    )


def utc(update: Update, name: str) -> str | None:
    value = update.fields.get(name)
    return value.isoformat() if isinstance(value, datetime) else None


@pytest.mark.parametrize(
    ("kind", "local", "name", "expected"),
    [
        # Zurich, the night clocks go forward (02:00 CET -> 03:00 CEST on 29 March 2026)
        ("SCL", "2026-03-29T01:30:00", "times.off_block.scheduled", "2026-03-29T00:30:00+00:00"),
        ("ESL", "2026-03-29T03:30:00", "times.off_block.estimated", "2026-03-29T01:30:00+00:00"),
        ("ACL", "2026-03-29T01:59:00", "times.off_block.actual", "2026-03-29T00:59:00+00:00"),
        ("ACL", "2026-03-29T03:00:00", "times.off_block.actual", "2026-03-29T01:00:00+00:00"),
        # the night they go back (03:00 CEST -> 02:00 CET on 25 October 2026)
        ("SCL", "2026-10-25T01:59:00", "times.off_block.scheduled", "2026-10-24T23:59:00+00:00"),
        ("SCL", "2026-10-25T03:00:00", "times.off_block.scheduled", "2026-10-25T02:00:00+00:00"),
        # an offset given with the local time is taken as given
        ("ACL", "2026-03-29T02:30:00+01:00", "times.off_block.actual", "2026-03-29T01:30:00+00:00"),
    ],
)
def test_departure_local_times_use_the_departure_airports_zone(
    kind: str, local: str, name: str, expected: str
) -> None:
    day = local[:10]
    update = leg(time("OFB", kind, local), day=day)
    assert utc(update, name) == expected
    assert update.unknown == {}


def test_arrival_local_times_use_the_arrival_airports_zone() -> None:
    # New York, clocks forward at 02:00 EST on 8 March 2026; Zurich still on CET
    update = leg(
        time("OFB", "SCL", "2026-03-08T09:00:00")
        + time("TDN", "ESL", "2026-03-08T01:59:00")
        + time("ONB", "ACL", "2026-03-08T03:10:00"),
        day="2026-03-08",
    )
    assert utc(update, "times.off_block.scheduled") == "2026-03-08T08:00:00+00:00"
    assert utc(update, "times.touchdown.estimated") == "2026-03-08T06:59:00+00:00"
    assert utc(update, "times.on_block.actual") == "2026-03-08T07:10:00+00:00"


@pytest.mark.parametrize(
    ("local", "reason"),
    [
        ("2026-03-29T02:30:00", "does not exist at ZRH (Europe/Zurich): the clocks went forward"),
        ("2026-10-25T02:30:00", "happens twice at ZRH (Europe/Zurich): the clocks went back"),
        ("2026-10-25T02:00:00", "happens twice at ZRH (Europe/Zurich): the clocks went back"),
        ("yesterday at ten", "not an ISO 8601 date-time"),
    ],
)
def test_a_local_time_that_cannot_be_placed_is_kept_raw_with_the_reason(
    local: str, reason: str
) -> None:
    update = leg(time("OFB", "ACL", local) + time("OFB", "SCT", "2026-03-29T08:00:00Z"))
    path = "LegData/OperationTime[@OperationQualifier='OFB'][@TimeType='ACL']"
    assert update.unknown == {path: local}
    assert reason in update.reasons[path]
    assert "times.off_block.actual" not in update.fields
    assert utc(update, "times.off_block.scheduled") == "2026-03-29T08:00:00+00:00"


def test_a_local_time_at_an_airport_without_a_known_zone_is_kept_raw() -> None:
    update = leg(time("ONB", "SCL", "2026-03-29T09:40:00"), arr="BQB")
    path = "LegData/OperationTime[@OperationQualifier='ONB'][@TimeType='SCL']"
    assert update.unknown == {path: "2026-03-29T09:40:00"}
    assert "time zone of BQB is not in the reference data" in update.reasons[path]
    assert "times.on_block.scheduled" not in update.fields


def test_the_utc_time_wins_over_the_same_time_in_local_time() -> None:
    update = leg(
        time("OFB", "SCT", "2026-03-29T08:00:00Z") + time("OFB", "SCL", "2026-03-29T10:05:00")
    )
    assert utc(update, "times.off_block.scheduled") == "2026-03-29T08:00:00+00:00"
