"""What a trip shows of a hub flight: local times with their zone, the delay against the
schedule, and the flight's state, from the hub's view alone."""

from __future__ import annotations

from typing import Any

from jetbridge.flights.passenger_view import local_moment, trip_flight, zone_name


def view(**times: Any) -> dict[str, Any]:
    return {
        "flight_key": "LX0014-2026-07-01-ZRH-JFK", "flight": "LX14", "version": 3,
        "departure_airport": "ZRH", "arrival_airport": "JFK", "status": "delayed",
        "gate": "E24", "terminal": "1", "codeshares": "UA9712,AC6710", "delays": [],
        "times": {"off_block": {"scheduled": "2026-07-01T11:00:00Z", **times},
                  "on_block": {"scheduled": "2026-07-01T19:40:00Z"}},
    }  # fmt: skip


def test_times_are_local_with_the_zone_in_summer() -> None:
    shown = trip_flight(view())
    departure, arrival = shown["departure"], shown["arrival"]
    assert departure["scheduled_local"] == {
        "local": "2026-07-01T13:00:00+02:00", "clock": "13:00", "date": "2026-07-01",
        "zone": "Europe/Zurich", "abbreviation": "CEST",
    }  # fmt: skip
    assert arrival["scheduled_local"]["clock"] == "15:40"
    assert arrival["scheduled_local"]["abbreviation"] == "EDT"
    assert shown["codeshares"] == ["UA9712", "AC6710"]
    assert (shown["delay_minutes"], shown["cancelled"]) == (0, False)


def test_the_delay_is_the_best_known_time_against_the_schedule() -> None:
    assert trip_flight(view(estimated="2026-07-01T11:35:00Z"))["delay_minutes"] == 35
    late = trip_flight(view(estimated="2026-07-01T11:35:00Z", actual="2026-07-01T11:50:00Z"))
    assert (late["delay_minutes"], late["departure"]["best"]) == (50, "actual")
    assert trip_flight(view(estimated="2026-07-01T10:55:00Z"))["delay_minutes"] == 0


def test_an_unknown_airport_shows_utc() -> None:
    assert zone_name("XXX") == "UTC"
    assert local_moment("2026-07-01T11:00:00Z", "XXX")["abbreviation"] == "UTC"  # type: ignore[index]
    assert local_moment(None, "ZRH") is None
