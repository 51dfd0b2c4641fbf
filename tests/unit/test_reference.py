"""The reference data: every airport of the demo network has coordinates and a time zone,
block times follow the great-circle distance, and the network's departures are local times."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from jetbridge import reference
from jetbridge.bounds import OutOfRange
from jetbridge.schedules import network_schedule


def test_every_network_airport_and_carrier_is_in_the_reference_data() -> None:
    airports, airlines = reference.airports(), reference.airlines()
    for route in reference.network():
        assert route.origin in airports and route.destination in airports
        assert route.airline in airlines
        ZoneInfo(airports[route.origin].time_zone)
    assert airports["ZRH"].icao == "LSZH"
    assert airlines["LX"].icao == "SWR"


@pytest.mark.parametrize(
    ("origin", "destination", "km", "minutes"),
    [("ZRH", "LHR", 788, 95), ("ZRH", "JFK", 6309, 480), ("ZRH", "SIN", 10306, 760)],
)
def test_block_times_come_from_the_great_circle(
    origin: str, destination: str, km: int, minutes: int
) -> None:
    assert round(reference.great_circle_km(origin, destination)) == km
    assert reference.great_circle_km(destination, origin) == pytest.approx(
        reference.great_circle_km(origin, destination)
    )
    assert reference.block_minutes(origin, destination) == minutes


def test_network_departures_are_at_local_times_across_the_clock_change() -> None:
    winter = {e.flight_id: e for e in network_schedule(start=date(2026, 12, 1), days=1)}
    summer = {e.flight_id: e for e in network_schedule(start=date(2026, 7, 1), days=1)}
    assert winter["LX0318-2026-12-01"].departure == datetime(2026, 12, 1, 6, 40, tzinfo=UTC)
    assert summer["LX0318-2026-07-01"].departure == datetime(2026, 7, 1, 5, 40, tzinfo=UTC)
    lx318 = winter["LX0318-2026-12-01"]
    assert lx318.identity.key == "LX0318-2026-12-01-ZRH-LHR"
    assert (lx318.terminal, lx318.arrival_terminal, lx318.currency) == ("1", "2", "CHF")
    assert lx318.codeshares == ["LH5790", "SN3418"]
    assert winter["BA0710-2026-12-01"].currency == "GBP"


def test_a_late_evening_departure_keeps_its_local_operating_date() -> None:
    entries = {e.flight_id: e for e in network_schedule(start=date(2026, 12, 1), days=1)}
    singapore = entries["LX0177-2026-12-01"]  # 23:55 in Singapore is 15:55 UTC
    assert singapore.departure == datetime(2026, 12, 1, 15, 55, tzinfo=UTC)
    assert singapore.identity.origin_date == date(2026, 12, 1)
    new_york = entries["LX0015-2026-12-01"]  # 22:15 in New York is 03:15 UTC the next day
    assert new_york.departure == datetime(2026, 12, 2, 3, 15, tzinfo=UTC)
    assert new_york.identity.key == "LX0015-2026-12-01-JFK-ZRH"


def test_the_network_period_is_bounded() -> None:
    with pytest.raises(OutOfRange, match="days"):
        network_schedule(start=date(2026, 12, 1), days=367)
    assert network_schedule(start=date(2026, 12, 1), days=0) == []
