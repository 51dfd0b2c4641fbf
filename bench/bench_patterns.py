"""Pattern matching throughput: the compiled rule index against evaluating each rule on its own.

Rules are realistic flight-event subscriptions (a passenger's flight, a gate screen, a delay
alert, an airline's feed...). Both sides run in the same process on the same events.

    python bench/bench_patterns.py [--quick]
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from jetbridge.aodb.simulator import AIRLINES
from jetbridge.events.patterns import RuleMatcher, parse_pattern

TYPES = ["flight.updated", "flight.gate_changed", "flight.delayed", "flight.boarding", "flight.departed",
         "flight.arrived", "flight.cancelled", "flight.baggage_belt_assigned", "flight.estimate_changed"]  # fmt: skip
AIRPORTS = ["ZRH", "LHR", "CDG", "FRA", "AMS", "MAD", "JFK", "DXB", "SIN", "GVA"]


def flight(rng: random.Random) -> str:
    return f"{rng.choice(AIRLINES)}{rng.randint(1, 2999):04d}"


def rule(rng: random.Random) -> dict[str, Any]:
    kind = rng.randrange(7)
    if kind == 0:  # one passenger's flight, any change
        return {
            "source": ["jetbridge.flights"],
            "detail": {"flight_key": [{"prefix": flight(rng)}]},
        }
    if kind == 1:  # a gate screen
        gate = f"{rng.choice('ABDE')}{rng.randint(1, 60)}"
        return {
            "detail-type": ["flight.gate_changed", "flight.boarding"],
            "detail": {"gate": [gate]},
        }
    if kind == 2:  # delay alerts for an airline above a threshold
        return {
            "detail-type": ["flight.delayed"],
            "detail": {
                "airline": [rng.choice(AIRLINES)],
                "delay_minutes": [{"numeric": [">=", rng.choice([15, 30, 60])]}],
            },
        }
    if kind == 3:  # an airline's departures feed at an airport, not cancelled
        return {
            "detail": {
                "airline": [rng.choice(AIRLINES)],
                "departure_airport": [rng.choice(AIRPORTS)],
                "status": [{"anything-but": ["cancelled"]}],
            }
        }
    if kind == 4:  # a flight's specific milestones
        return {
            "detail-type": rng.sample(TYPES, 2),
            "detail": {"flight_number": [flight(rng)[2:]], "airline": [rng.choice(AIRLINES)]},
        }
    if kind == 5:  # terminal operations, pier by prefix
        return {
            "detail": {
                "terminal": [rng.choice(["1", "2", "E"])],
                "gate": [{"prefix": rng.choice("ABDE")}],
            },
            "detail-type": [rng.choice(TYPES)],
        }
    return {"$or": [{"detail-type": ["flight.cancelled"], "detail": {"arrival_airport": [rng.choice(AIRPORTS)]}},
                    {"detail": {"diverted_to": [{"exists": True}], "airline": [rng.choice(AIRLINES)]}}]}  # fmt: skip


def event(rng: random.Random) -> dict[str, Any]:
    key = flight(rng)
    return {
        "version": "0", "id": "x", "source": "jetbridge.flights", "detail-type": rng.choice(TYPES),
        "account": "000000000000", "time": "2026-11-24T10:00:00Z", "region": "local-1", "resources": [],
        "detail": {
            "flight_key": f"{key}-2026-11-24-ZRH-{rng.choice(AIRPORTS)}", "airline": key[:2], "flight_number": key[2:],
            "departure_airport": rng.choice(AIRPORTS), "arrival_airport": rng.choice(AIRPORTS),
            "status": rng.choice(["scheduled", "delayed", "boarding", "departed", "cancelled"]),
            "gate": f"{rng.choice('ABDE')}{rng.randint(1, 60)}", "terminal": rng.choice(["1", "2", "E"]),
            "delay_minutes": rng.choice([0, 5, 20, 45, 90]), "version": rng.randint(1, 40),
            "codeshares": [flight(rng) for _ in range(rng.randint(0, 2))],
        },
    }  # fmt: skip


def rate(function: Any, events: list[dict[str, Any]], seconds: float) -> tuple[float, float]:
    """Events per second, and matches per event."""
    matched = done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for item in events:
            matched += function(item)
            done += 1
    return done / (time.perf_counter() - start), matched / done


def measure(count: int, rng: random.Random, events: list[dict[str, Any]], seconds: float) -> str:
    patterns = [rule(rng) for _ in range(count)]
    matcher = RuleMatcher()
    for number, pattern in enumerate(patterns):
        matcher.add(f"r{number}", pattern)
    compiled = [parse_pattern(p) for p in patterns]
    for item in events[:50]:  # same answers from both, and the index is built outside the timing
        assert len(matcher.matches(item)) == sum(1 for p in compiled if p.matches(item))

    def indexed_match(item: dict[str, Any]) -> int:
        return len(matcher.matches(item))

    def each_rule(item: dict[str, Any]) -> int:
        return sum(1 for p in compiled if p.matches(item))

    indexed, per_event = rate(indexed_match, events, seconds)
    baseline, _ = rate(each_rule, events, seconds)
    return f"| {count:,} | {indexed:,.0f} | {baseline:,.0f} | {indexed / baseline:,.1f}x | {per_event:.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seconds = 0.5 if args.quick else 3.0
    rng = random.Random(7)
    events = [event(rng) for _ in range(500)]
    print(
        "| rules | compiled index events/s | each rule separately events/s | speed-up | matches/event |"
    )
    print("|---|---|---|---|---|")
    for count in (10, 1_000, 10_000):
        print(measure(count, rng, events, seconds), flush=True)


if __name__ == "__main__":
    main()
