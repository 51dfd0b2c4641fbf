from jetbridge.disruption.policy import (
    CANCELLATION,
    DELAY,
    DIVERSION,
    GATE_CHANGE,
    KINDS,
    MISSED_CONNECTION,
)
from jetbridge.disruption.trigger import affected_kinds


def test_a_gate_change_can_change_only_the_gate_notice() -> None:
    assert affected_kinds(["gate"]) == {GATE_CHANGE}
    assert affected_kinds(["terminal", "baggage_belt"]) == {GATE_CHANGE}


def test_a_new_departure_estimate_can_change_the_delay_and_the_connections() -> None:
    assert affected_kinds(["times.off_block.estimated"]) == {DELAY, MISSED_CONNECTION}
    assert affected_kinds(["times.on_block.estimated"]) == {MISSED_CONNECTION}
    assert affected_kinds(["diversion_airport"]) == {DIVERSION}


def test_a_status_change_can_change_every_kind() -> None:
    assert affected_kinds(["status"]) == set(KINDS)
    assert CANCELLATION in affected_kinds(["status", "gate"])


def test_fields_no_disruption_is_made_of_change_nothing() -> None:
    assert affected_kinds(["baggage_belt", "times.on_block.actual"]) == set()


def test_an_event_that_does_not_say_what_changed_is_looked_at_for_every_kind() -> None:
    assert affected_kinds(None) == set(KINDS)
