"""Pattern matching throughput: the compiled rule index against evaluating each rule on its own.

Rules are realistic flight-event subscriptions (a passenger's flight, a gate screen, a delay
alert, an airline's feed...). Both sides run in the same process on the same events.

    python bench/bench_patterns.py [--quick]
    python bench/bench_patterns.py --selective [--quick]

--selective: every rule names one flight (by exact key, prefix, suffix, ignore-case, numeric
range or single number, wildcard; some with anything-but), so an event matches almost none of
them; the work per event should stay flat from 10 to 100,000 rules. Before timing, the index's
answers are checked against evaluating every rule on its own, on events of named flights
(which match) and of random ones.
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


DAYS = 30
POOL = len(AIRLINES) * 9999 * DAYS


def named(number: int) -> tuple[str, int, str]:
    """The flight with this number in the pool: (designator, day, destination)."""
    airline = AIRLINES[number % len(AIRLINES)]
    flight_number = number // len(AIRLINES) % 9999 + 1
    day = number // (len(AIRLINES) * 9999) % DAYS + 1
    return f"{airline}{flight_number:04d}", day, AIRPORTS[number % len(AIRPORTS)]


def selective_event(number: int, rng: random.Random) -> dict[str, Any]:
    designator, day, destination = named(number)
    return {
        "version": "0", "id": "x", "source": "jetbridge.flights", "detail-type": rng.choice(TYPES),
        "account": "000000000000", "time": "2026-11-24T10:00:00Z", "region": "local-1", "resources": [],
        "detail": {
            "flight_key": f"{designator}-2026-11-{day:02d}-ZRH-{destination}", "seq": number,
            "flight_id": f"ZRH/{day:02d}NOV/{designator}", "callsign": f"{designator}{day:02d}".upper(),
            "airline": designator[:2], "status": rng.choice(["scheduled", "delayed", "boarding", "cancelled"]),
            "gate": f"{rng.choice('ABDE')}{rng.randint(1, 60)}", "delay_minutes": rng.choice([0, 5, 20, 45]),
        },
    }  # fmt: skip


def selective_rule(number: int, kind: int) -> dict[str, Any]:
    designator, day, destination = named(number)
    key_prefix = f"{designator}-2026-11-{day:02d}-"
    tail = f"{day:02d}NOV/{designator}"
    detail: dict[str, Any] = [
        {"flight_key": [f"{key_prefix}ZRH-{destination}"]},
        {"flight_key": [{"prefix": key_prefix}]},
        {"flight_id": [{"suffix": tail}]},
        {"callsign": [{"equals-ignore-case": f"{designator}{day:02d}".lower()}]},
        {"seq": [{"numeric": [">=", number, "<", number + 1]}]},
        {"seq": [{"numeric": ["=", number]}], "status": [{"anything-but": ["cancelled"]}]},
        {"flight_key": [{"prefix": key_prefix}], "status": [{"anything-but": {"prefix": "cancel"}}]},
        {"flight_id": [{"wildcard": f"ZRH/*/{designator}"}], "seq": [{"numeric": [">", number - 1, "<", number + 1]}]},
        {"flight_id": [{"suffix": {"equals-ignore-case": tail.lower()}}], "delay_minutes": [{"numeric": [">=", 0]}]},
    ][kind]  # fmt: skip
    rule: dict[str, Any] = {"detail": detail}
    if kind == 6:
        rule["source"] = ["jetbridge.flights"]
    return rule


def timed(function: Any, events: list[dict[str, Any]], seconds: float) -> tuple[float, float]:
    """Events per second (the best of five rounds, as timeit does, since other work on the
    machine only ever slows a round down) and matches per event."""
    best = matched = done = 0
    for _ in range(5):
        count = 0
        start = time.perf_counter()
        while count < 3 or time.perf_counter() - start < seconds / 5:
            matched += function(events[done % len(events)])
            done += 1
            count += 1
        best = max(best, count / (time.perf_counter() - start))
    return best, matched / done


def measure_selective(count: int, rng: random.Random, seconds: float) -> str:
    flights = rng.sample(range(POOL), count)
    matcher = RuleMatcher()
    compiled = []
    for index, number in enumerate(flights):
        pattern = selective_rule(number, index % 9)
        matcher.add(f"r{index}", pattern)
        compiled.append((f"r{index}", parse_pattern(pattern)))
    checked = max(10, min(200, 1_000_000 // count))
    probes = [selective_event(rng.choice(flights), rng) for _ in range(checked // 2)]
    probes += [selective_event(rng.randrange(POOL), rng) for _ in range(checked - len(probes))]
    hits = 0
    for item in probes:  # full semantics: the index answers as each rule evaluated alone
        expected = {key for key, pattern in compiled if pattern.matches(item)}
        assert matcher.matches(item) == expected, item
        hits += len(expected)
    assert hits >= len(probes) // 4, "the probes of named flights should match"
    events = [selective_event(rng.randrange(POOL), rng) for _ in range(2000)]
    indexed, per_event = timed(lambda item: len(matcher.matches(item)), events, seconds)
    baseline, _ = timed(
        lambda item: sum(1 for _, p in compiled if p.matches(item)), events, seconds
    )
    return (
        f"| {count:,} | {indexed:,.0f} | {baseline:,.1f} | {indexed / baseline:,.0f}x "
        f"| {per_event:.3f} | {len(probes)} ({hits} matches) |"
    )


def selective(quick: bool) -> None:
    seconds = 0.5 if quick else 3.0
    rng = random.Random(11)
    print(
        "| rules | compiled index events/s | each rule separately events/s | speed-up "
        "| matches/event | agreement events checked |"
    )
    print("|---|---|---|---|---|---|")
    for count in (10, 1_000, 10_000, 100_000):
        print(measure_selective(count, rng, seconds), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--selective", action="store_true")
    args = parser.parse_args()
    if args.selective:
        selective(args.quick)
        return
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
