"""The flight merge: idempotent, per field, newest source time wins, explicit clears only."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from jetbridge.flights.merge import Update, apply
from jetbridge.flights.model import FlightIdentity, InvalidFlight, field_names, nested

FLIGHT = FlightIdentity.create(
    airline="lx",
    flight_number="100",
    origin_date="2026-11-24",
    departure_airport="zrh",
    arrival_airport="LHR",
)
T0 = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
STD = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def update(
    minutes: int, source: str = "aodb", clears: frozenset[str] = frozenset(), **fields: object
) -> Update:
    return Update(
        FLIGHT,
        source,
        T0 + timedelta(minutes=minutes),
        {k.replace("__", "."): v for k, v in fields.items()},
        clears,
    )


def test_identity_is_normalised() -> None:
    assert FLIGHT.key == "LX0100-2026-11-24-ZRH-LHR"
    assert FLIGHT.display_number == "LX100"
    with pytest.raises(InvalidFlight, match="flight_number"):
        FlightIdentity.create(
            airline="LX",
            flight_number="12345",
            origin_date="2026-11-24",
            departure_airport="ZRH",
            arrival_airport="LHR",
        )
    with pytest.raises(InvalidFlight, match="origin_date"):
        FlightIdentity.create(
            airline="LX",
            flight_number="1",
            origin_date="24.11.2026",
            departure_airport="ZRH",
            arrival_airport="LHR",
        )


def test_first_sight_schedules_and_versions_start_at_one() -> None:
    result = apply(None, update(0, gate="a12", times__off_block__scheduled=STD))
    assert result.state.version == 1
    assert [e.type for e in result.events] == [
        "flight.scheduled",
        "flight.updated",
        "flight.gate_changed",
    ]
    assert result.state.fields["gate"] == "A12"
    assert result.state.fields["times.off_block.scheduled"] == "2026-11-24T08:00:00Z"


def test_same_message_twice_changes_nothing() -> None:
    first = apply(None, update(0, gate="A12"))
    again = apply(first.state, update(0, gate="A12"))
    assert again.state is first.state
    assert again.events == []


def test_older_message_never_overwrites_newer_field() -> None:
    state = apply(None, update(10, gate="B7", terminal="1")).state
    late = apply(state, update(5, gate="A12", stand="E22"))
    assert late.state.fields["gate"] == "B7"
    assert late.state.fields["stand"] == "E22"
    assert late.state.version == 2
    assert set(late.changed) == {"stand"}


def test_missing_values_do_not_erase_but_clears_do() -> None:
    state = apply(None, update(0, gate="A12", baggage_belt="5")).state
    kept = apply(state, update(1, gate=None, terminal="2"))
    assert kept.state.fields["gate"] == "A12"
    cleared = apply(kept.state, update(2, clears=frozenset({"gate"})))
    assert "gate" not in cleared.state.fields
    assert cleared.state.version == 3


def test_versions_rise_by_one_per_effective_change() -> None:
    state = None
    versions = []
    for minute, gate in enumerate(["A1", "A1", "A2", "A2", "A3"]):
        state = apply(state, update(minute, gate=gate)).state
        versions.append(state.version)
    assert versions == [1, 1, 2, 2, 3]


def test_derived_events_follow_the_flight_through_its_day() -> None:
    state = apply(None, update(0, times__off_block__scheduled=STD)).state
    steps = [
        (
            update(1, times__off_block__estimated=STD + timedelta(minutes=25)),
            {"flight.updated", "flight.estimate_changed", "flight.delayed"},
        ),
        (update(2, gate="A12"), {"flight.updated", "flight.gate_changed"}),
        (update(3, times__boarding_start__actual=STD), {"flight.updated", "flight.boarding"}),
        (update(4, times__final_call__actual=STD), {"flight.updated", "flight.final_call"}),
        (update(5, times__gate_close__actual=STD), {"flight.updated", "flight.gate_closed"}),
        (
            update(6, times__off_block__actual=STD + timedelta(minutes=27)),
            {"flight.updated", "flight.departed"},
        ),
        (
            update(7, times__on_block__actual=STD + timedelta(hours=2)),
            {"flight.updated", "flight.arrived"},
        ),
        (update(8, baggage_belt="5"), {"flight.updated", "flight.baggage_belt_assigned"}),
    ]
    for message, expected in steps:
        result = apply(state, message)
        assert {e.type for e in result.events} == expected
        assert all(e.data["version"] == result.state.version for e in result.events)
        state = result.state


def test_cancellation_and_diversion() -> None:
    state = apply(None, update(0, gate="A1")).state
    cancelled = apply(state, update(1, status="cancelled"))
    assert "flight.cancelled" in {e.type for e in cancelled.events}
    diverted = apply(state, update(1, status="diverted", diversion_airport="bsl"))
    assert "flight.diverted" in {e.type for e in diverted.events}
    assert diverted.state.view()["diversion_airport"] == "BSL"


def test_view_nests_fields_and_explains_delay_codes() -> None:
    state = apply(None, update(0, delays__0__code="93", delays__0__minutes="25", gate="A1")).state
    view = state.view()
    assert view["delays"] == [
        {"code": "93", "minutes": 25, "meaning": "aircraft rotation, late arrival of aircraft"}
    ]
    assert view["flight"] == "LX100"
    assert view["version"] == 1


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"gatee": "A1"}, "gatee"),
        ({"status": "flying"}, "status"),
        ({"times.off_block.actual": "soon"}, "times.off_block.actual"),
        ({"delays.0.minutes": "x"}, "minutes"),
    ],
)
def test_bad_fields_are_named(fields: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidFlight, match=fragment.replace(".", r"\.")):
        apply(None, Update(FLIGHT, "aodb", T0, fields))


def test_naive_times_are_rejected() -> None:
    with pytest.raises(InvalidFlight, match="UTC offset"):
        Update(FLIGHT, "aodb", datetime(2026, 11, 24), {})
    with pytest.raises(InvalidFlight, match="UTC offset"):
        apply(
            None, Update(FLIGHT, "aodb", T0, {"times.off_block.actual": datetime(2026, 11, 24, 8)})
        )


def test_every_field_has_a_place_in_the_nested_view() -> None:
    flat = {name: "x" for name in field_names() if not name.startswith("delays")}
    tree = nested(flat)
    assert tree["times"]["final_call"]["target"] == "x"
    assert date(2026, 11, 24) == FLIGHT.origin_date
