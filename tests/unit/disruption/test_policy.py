"""What counts as a disruption, the settings' syntax, signed links and how offers rank."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from jetbridge.disruption.itineraries import pair_legs, rank_connections, rank_direct
from jetbridge.disruption.links import Choice, LinkExpired, LinkSigner
from jetbridge.disruption.policy import (
    DisruptionRules,
    classify,
    misses_connection,
    parse_minutes,
    parse_partners,
)
from jetbridge.errors import Forbidden, InvalidRequest

T0 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


def flight(**fields: Any) -> dict[str, Any]:
    times = {"off_block": {"scheduled": T0.isoformat()}}
    if "estimated" in fields:
        times["off_block"]["estimated"] = fields.pop("estimated").isoformat()
    return {
        "flight_key": "LX0100-2026-12-01-ZRH-LHR",
        "flight": "LX100",
        "airline": "LX",
        "departure_airport": "ZRH",
        "arrival_airport": "LHR",
        "status": "scheduled",
        "times": times,
        **fields,
    }


def kinds(view: dict[str, Any], rules: DisruptionRules | None = None) -> list[str]:
    return [d.kind for d in classify(view, rules or DisruptionRules())]


def test_a_cancellation_is_the_only_disruption_of_a_cancelled_flight() -> None:
    assert kinds(flight(status="cancelled", gate="A7")) == ["cancellation"]


def test_a_delay_counts_from_the_airlines_threshold() -> None:
    late = flight(estimated=T0 + timedelta(minutes=45))
    assert kinds(late) == []
    assert kinds(late, DisruptionRules(delay_minutes_by_airline={"LX": 30})) == ["delay"]
    assert kinds(late, DisruptionRules(delay_minutes_by_airline={"LH": 30})) == []


def test_a_new_estimate_changes_the_fingerprint_and_the_same_one_does_not() -> None:
    rules = DisruptionRules(delay_minutes=30)
    (first,) = classify(flight(estimated=T0 + timedelta(minutes=45)), rules)
    (same,) = classify(flight(estimated=T0 + timedelta(minutes=45), remarks="x"), rules)
    (later,) = classify(flight(estimated=T0 + timedelta(minutes=90)), rules)
    assert first.fingerprint == same.fingerprint != later.fingerprint
    assert "delayed by 90 minutes" in later.summary


def test_diversions_and_gates_are_named() -> None:
    found = classify(
        flight(status="diverted", diversion_airport="BSL", gate="B3", terminal="2"),
        DisruptionRules(),
    )
    assert [(d.kind, d.summary) for d in found] == [
        ("diversion", "LX100 ZRH-LHR is diverted to BSL"),
        ("gate_change", "LX100 ZRH-LHR departs from terminal 2, gate B3"),
    ]


def test_minimum_connection_times_are_per_airport() -> None:
    rules = DisruptionRules(connection_minutes=60, connection_minutes_by_airport={"ZRH": 40})
    lands = T0
    assert not misses_connection(
        arrives=lands, onward_departs=lands + timedelta(minutes=45), airport="ZRH", rules=rules
    )
    assert misses_connection(
        arrives=lands, onward_departs=lands + timedelta(minutes=45), airport="LHR", rules=rules
    )


@pytest.mark.parametrize("text", ["LX", "LX=", "LX=abc", "lx=30", "LX=0", "LX=99999", "LX=30;"])
def test_bad_minutes_settings_name_the_part(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected CODE=MINUTES|between 1 and 1440"):
        parse_minutes(text)


def test_settings_parse() -> None:
    assert parse_minutes(" LX=30, ZRH=45 ,") == {"LX": 30, "ZRH": 45}
    assert parse_partners("LX=LH+OS,LH=LX") == {"LX": ("LH", "OS"), "LH": ("LX",)}
    with pytest.raises(ValueError, match="AIRLINE=PARTNER"):
        parse_partners("LX=lh")


def test_links_verify_only_as_signed_and_before_they_expire() -> None:
    signer = LinkSigner(b"k" * 32)
    choice = Choice("b-1", "LX0100-2026-12-01-ZRH-LHR", expires_at=2_000_000_000)
    link = signer.sign(choice)
    assert signer.verify(link, now=1_000_000_000) == choice
    with pytest.raises(LinkExpired):
        signer.verify(link, now=2_000_000_000)
    with pytest.raises(Forbidden, match="signature"):
        LinkSigner(b"o" * 32).verify(link, now=0)
    for garbage in ("", "v1", "v2.a.b", "v1..", "v1.a.b.c", "x" * 5000):
        with pytest.raises((InvalidRequest, Forbidden)):
            signer.verify(garbage, now=0)


def test_a_signed_payload_of_the_wrong_shape_is_refused() -> None:
    import base64

    signer = LinkSigner(b"k" * 32)
    for body in ([], {"b": 1}, {"b": "x", "f": "y", "e": True}, {"b": "x"}):
        payload = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
        with pytest.raises(InvalidRequest, match="payload"):
            signer.verify(f"v1.{payload}.{signer._digest(payload)}", now=0)


def row(flight_id: str, airline: str, arrives: float, fares: dict[str, int]) -> Any:
    return SimpleNamespace(
        flight_id=flight_id, airline=airline, arrives_at=arrives, fares=json.dumps(fares)
    )


def test_offers_rank_same_cabin_then_own_airline_then_arrival() -> None:
    rows = [
        row("LH1", "LH", 10, {"economy": 1, "business": 1}),
        row("LX2", "LX", 20, {"economy": 1, "business": 1}),
        row("LX3", "LX", 30, {"economy": 1}),
        row("LX4", "LX", 5, {"economy": 1}),
    ]
    free = {
        "LH1": {"economy": 5, "business": 5},
        "LX2": {"economy": 5, "business": 5},
        "LX3": {"economy": 5},
        "LX4": {"economy": 1},  # too few for two passengers
    }
    ranked = rank_direct(rows, cabin="economy", airline="LX", count=2, free=free, limit=4)
    assert [(r.flight_id, cabin) for ((r, cabin),) in ranked] == [
        ("LX2", "economy"),
        ("LX3", "economy"),
        ("LH1", "economy"),
        ("LX2", "business"),
    ]


def leg(flight_id: str, route: str, departs: int, arrives: int, airline: str = "LX") -> Any:
    """A catalogue row; times in minutes of the day."""
    return SimpleNamespace(
        flight_id=flight_id, airline=airline, origin=route[:3], destination=route[4:],
        departs_at=departs * 60.0, arrives_at=arrives * 60.0,
        fares=json.dumps({"economy": 1, "business": 1}),
    )  # fmt: skip


def test_connections_respect_the_hubs_minimum_connection_time() -> None:
    rules = DisruptionRules(connection_minutes=60, connection_minutes_by_airport={"MUC": 45})
    first = [leg("A", "GVA-MUC", 570, 630), leg("B", "GVA-FRA", 570, 630)]
    second = [
        leg("C", "MUC-BCN", 660, 780),  # 30 minutes after A: under MUC's 45
        leg("D", "MUC-BCN", 675, 800),  # 45 minutes: just enough
        leg("E", "FRA-BCN", 675, 790),  # 45 minutes at FRA: under the default 60
        leg("F", "FRA-BCN", 690, 820),
    ]
    pairs = pair_legs(first, second, connection_time=rules.connection_time)
    assert [(a.flight_id, b.flight_id) for a, b in pairs] == [("A", "D"), ("B", "F")]


def test_connections_rank_cabin_then_own_airline_then_arrival_each_flight_once() -> None:
    pairs = [
        (leg("P1", "GVA-MUC", 500, 560, "LH"), leg("P2", "MUC-BCN", 620, 700, "LH")),
        (leg("A", "GVA-MUC", 500, 560), leg("B", "MUC-BCN", 620, 720)),
        (leg("A", "GVA-MUC", 500, 560), leg("C", "MUC-BCN", 700, 800)),
        (leg("D", "GVA-MUC", 600, 660), leg("C", "MUC-BCN", 700, 800)),
        (leg("E", "GVA-MUC", 500, 560), leg("G", "MUC-BCN", 600, 690)),
    ]
    free = {
        "P1": {"economy": 2}, "P2": {"economy": 2}, "A": {"economy": 2}, "B": {"economy": 2},
        "C": {"economy": 2}, "D": {"economy": 2}, "E": {"economy": 2},
        "G": {"economy": 0, "business": 2},  # only business left: after every economy journey
    }  # fmt: skip
    ranked = rank_connections(pairs, cabin="economy", airline="LX", count=2, free=free, limit=5)
    assert [[(r.flight_id, cabin) for r, cabin in legs] for legs in ranked] == [
        [("A", "economy"), ("B", "economy")],
        [("D", "economy"), ("C", "economy")],  # A is offered already: C with D instead
        [("P1", "economy"), ("P2", "economy")],  # a partner's, though it arrives first
        [("E", "economy"), ("G", "business")],
    ]


def test_settings_refuse_malformed_disruption_settings_and_build_the_rules() -> None:
    from pydantic import ValidationError

    from jetbridge.config import Settings

    with pytest.raises(ValidationError, match="'LX=abc': expected CODE=MINUTES"):
        Settings(disruption_delay_by_airline="LX=abc")
    with pytest.raises(ValidationError, match="expected AIRLINE=PARTNER"):
        Settings(disruption_partners="LX")
    with pytest.raises(ValidationError, match="public_url"):
        Settings(public_url="javascript:alert(1)")
    rules = Settings(
        disruption_delay_by_airline="LX=30", min_connection_by_airport="ZRH=40"
    ).disruption_rules()
    assert rules.delay_threshold("LX") == timedelta(minutes=30)
    assert rules.delay_threshold("LH") == timedelta(minutes=60)
    assert rules.connection_time("ZRH") == timedelta(minutes=40)
