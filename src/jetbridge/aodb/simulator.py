"""A seeded, realistic airport day written into a legacy AODB table, at real or accelerated speed.

`plan_day` is pure: the schedule (aircraft rotations through the home airport) and a timeline of
changes (estimates, gate assignments and changes, boarding milestones, delays with IATA codes,
take-off and landing, baggage belts, cancellations, one diversion). `AodbSimulator` writes it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, update

from jetbridge.aodb.legacy import legacy_metadata, movements

AIRLINES = [
    "LX",
    "LH",
    "BA",
    "AF",
    "KL",
    "OS",
    "SN",
    "IB",
    "EW",
    "U2",
    "TP",
    "SK",
    "AY",
    "EK",
    "QR",
]
STATIONS = [
    "LHR",
    "CDG",
    "FRA",
    "AMS",
    "MAD",
    "BCN",
    "FCO",
    "VIE",
    "BRU",
    "CPH",
    "ARN",
    "HEL",
    "LIS",
    "DUB",
    "MUC",
    "HAM",
    "BER",
    "PRG",
    "WAW",
    "ATH",
    "IST",
    "DXB",
    "DOH",
    "JFK",
    "EWR",
    "BOS",
    "ORD",
    "YUL",
    "SIN",
    "BKK",
    "NRT",
    "MXP",
    "NCE",
    "PMI",
    "OPO",
    "MAN",
    "EDI",
    "OSL",
    "GVA",
]
TYPES = ["A320", "A20N", "A321", "A21N", "A319", "A220", "B738", "B38M", "E190", "A333", "B77W"]
DELAY_CODES = [
    ("93", "late arrival of aircraft"),
    ("81", "ATFM due to ATC en-route demand"),
    ("11", "late check-in"),
    ("15", "boarding discrepancies"),
    ("41", "aircraft defects"),
    ("63", "late crew boarding"),
    ("71", "departure station weather"),
    ("89", "restrictions at airport of departure"),
    ("32", "loading/unloading"),
]
GATES = {"A": range(1, 21), "B": range(31, 45), "D": range(1, 60), "E": range(2, 70)}
# Piers A and B are reached from terminal 1, D and E from terminal 2.
TERMINALS = {"A": "1", "B": "1", "D": "2", "E": "2"}


@dataclass
class Movement:
    mvt_id: int
    airline: str
    number: str
    departure: str
    arrival: str
    std: datetime
    sta: datetime
    ac_type: str
    registration: str
    codeshares: str | None
    origin_date: date | None = None  # the local date of departure; the UTC date if not given
    terminal: str | None = None


@dataclass(frozen=True, slots=True)
class PlannedLeg:
    """A scheduled leg the simulator is to fly (from the schedule that sells it)."""

    airline: str
    number: str
    origin: str
    destination: str
    departure: datetime
    arrival: datetime
    aircraft_type: str
    origin_date: date
    terminal: str | None = None
    codeshares: tuple[str, ...] = ()


@dataclass(order=True)
class Change:
    at: datetime
    mvt_id: int = field(compare=False)
    values: dict[str, Any] = field(compare=False)


@dataclass
class DayPlan:
    home: str
    day: date
    movements: list[Movement]
    changes: list[Change]


def plan_day(*, seed: int, home: str = "ZRH", day: date, rotations: int = 300) -> DayPlan:
    """Plan `rotations` aircraft turnarounds (an arrival and a departure each) at `home`."""
    rng = random.Random(seed)
    planned: list[Movement] = []
    changes: list[Change] = []
    start = datetime(day.year, day.month, day.day, 5, 0, tzinfo=UTC)
    for index in range(rotations):
        arrival_time = start + timedelta(minutes=rng.randint(0, 16 * 60))
        turn = timedelta(minutes=rng.randint(45, 120))
        airline, station = rng.choice(AIRLINES), rng.choice(STATIONS)
        block = timedelta(minutes=rng.randint(55, 200))
        registration = f"HB-J{chr(65 + index % 26)}{chr(65 + (index // 26) % 26)}"
        ac_type = rng.choice(TYPES)
        inbound = Movement(
            2 * index + 1,
            airline,
            str(rng.randint(100, 4999)),
            station,
            home,
            arrival_time - block,
            arrival_time,
            ac_type,
            registration,
            None,
        )
        outbound = Movement(
            2 * index + 2,
            airline,
            str(rng.randint(100, 4999)),
            home,
            station,
            arrival_time + turn,
            arrival_time + turn + block,
            ac_type,
            registration,
            _codeshares(rng, airline),
        )
        planned += [inbound, outbound]
        changes += _arrival_story(rng, inbound)
        changes += _departure_story(rng, outbound, diverted=False)
    _divert_one(rng, planned, changes, home)
    changes.sort()
    return DayPlan(home=home, day=day, movements=planned, changes=changes)


def plan_flights(*, seed: int, home: str = "ZRH", day: date, legs: list[PlannedLeg]) -> DayPlan:
    """The day of the given scheduled legs at `home`: each departure and arrival there with its
    seeded story (gates, estimates, delays, boarding, cancellations), under the schedule's own
    identity, so the flights on the board are the flights that were sold."""
    rng = random.Random(seed)
    planned: list[Movement] = []
    changes: list[Change] = []
    ordered = sorted(legs, key=lambda leg: (leg.departure, leg.airline, leg.number))
    for index, leg in enumerate(ordered):
        if home not in (leg.origin, leg.destination):
            continue
        movement = Movement(
            index + 1, leg.airline, leg.number, leg.origin, leg.destination, leg.departure,
            leg.arrival, leg.aircraft_type,
            f"HB-J{chr(65 + index % 26)}{chr(65 + (index // 26) % 26)}",
            ",".join(leg.codeshares) or None, leg.origin_date, leg.terminal,
        )  # fmt: skip
        planned.append(movement)
        if leg.origin == home:
            story = _departure_story(rng, movement, diverted=False)
            changes += [_in_terminal(change, leg.terminal) for change in story]
        else:
            changes += _arrival_story(rng, movement)
    changes.sort()
    return DayPlan(home=home, day=day, movements=planned, changes=changes)


def _in_terminal(change: Change, terminal: str | None) -> Change:
    if terminal is None or "TERMINAL" not in change.values:
        return change
    return Change(change.at, change.mvt_id, change.values | {"TERMINAL": terminal})


def _codeshares(rng: random.Random, airline: str) -> str | None:
    partners = [a for a in AIRLINES if a != airline]
    if rng.random() < 0.4:
        return ",".join(
            f"{p}{rng.randint(1000, 9999)}" for p in rng.sample(partners, rng.randint(1, 2))
        )
    return None


def _arrival_story(rng: random.Random, m: Movement) -> list[Change]:
    delay = _delay_minutes(rng)
    eta = m.sta + timedelta(minutes=delay)
    landed = eta + timedelta(minutes=rng.randint(-4, 4))
    on_block = landed + timedelta(minutes=rng.randint(4, 12))
    stand = f"{rng.choice('ABE')}{rng.randint(10, 79)}"
    arrival = {"ETA_UTC": eta, "STAND": stand, "ARR_TERMINAL": TERMINALS[stand[0]]}
    story = [
        Change(m.sta - timedelta(hours=2), m.mvt_id, arrival),
        Change(m.sta - timedelta(minutes=40), m.mvt_id, {"ETA_UTC": landed, "FLT_STATUS": "APP"}),
        Change(landed, m.mvt_id, {"TDN_UTC": landed, "FLT_STATUS": "LND"}),
        Change(on_block, m.mvt_id, {"ATA_UTC": on_block, "FLT_STATUS": "ARR"}),
        Change(on_block + timedelta(minutes=3), m.mvt_id, {"BELT": str(rng.randint(1, 24))}),
    ]
    if delay >= 15:
        code, _ = rng.choice(DELAY_CODES)
        story.append(
            Change(m.sta - timedelta(minutes=90), m.mvt_id, {"DLY_CODE1": code, "DLY_MIN1": delay})
        )
    return story


def _departure_story(rng: random.Random, m: Movement, *, diverted: bool) -> list[Change]:
    if rng.random() < 0.02:
        return [
            Change(
                m.std - timedelta(minutes=rng.randint(30, 180)),
                m.mvt_id,
                {"FLT_STATUS": "CNL", "REMARK": "CANCELLED"},
            )
        ]
    pier = rng.choice(list(GATES))
    gate = f"{pier}{rng.choice(list(GATES[pier]))}"
    delay = _delay_minutes(rng)
    etd = m.std + timedelta(minutes=delay)
    off_block = etd + timedelta(minutes=rng.randint(-2, 5))
    story = [
        Change(
            m.std - timedelta(hours=3),
            m.mvt_id,
            {
                "CHECKIN_DESKS": f"{rng.randint(1, 80)}-{rng.randint(81, 120)}",
                "TERMINAL": TERMINALS[pier],
            },
        ),
        Change(m.std - timedelta(minutes=90), m.mvt_id, {"GATE": gate, "STAND": gate}),
        Change(
            etd - timedelta(minutes=40),
            m.mvt_id,
            {"BRD_START_UTC": etd - timedelta(minutes=40), "FLT_STATUS": "BRD"},
        ),
        Change(
            etd - timedelta(minutes=15),
            m.mvt_id,
            {"FINAL_CALL_UTC": etd - timedelta(minutes=15), "FLT_STATUS": "FCL"},
        ),
        Change(
            etd - timedelta(minutes=10),
            m.mvt_id,
            {"GATE_CLOSE_UTC": etd - timedelta(minutes=10), "FLT_STATUS": "GCL"},
        ),
        Change(off_block, m.mvt_id, {"ATD_UTC": off_block, "FLT_STATUS": "DEP"}),
        Change(
            off_block + timedelta(minutes=rng.randint(8, 20)),
            m.mvt_id,
            {"TKO_UTC": off_block + timedelta(minutes=12), "FLT_STATUS": "AIR"},
        ),
    ]
    if rng.random() < 0.12:
        moved = f"{pier}{rng.choice(list(GATES[pier]))}"
        story.append(Change(m.std - timedelta(minutes=55), m.mvt_id, {"GATE": moved}))
    if delay >= 15:
        code, _ = rng.choice(DELAY_CODES)
        extra: dict[str, Any] = {
            "ETD_UTC": etd,
            "DLY_CODE1": code,
            "DLY_MIN1": delay,
            "FLT_STATUS": "DLY",
        }
        if delay > 40:
            extra |= {"DLY_CODE2": "93", "DLY_MIN2": delay // 3, "DLY_MIN1": delay - delay // 3}
        story.append(Change(m.std - timedelta(minutes=rng.randint(50, 120)), m.mvt_id, extra))
    return story


def _delay_minutes(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.7:
        return rng.randint(-5, 8)
    if roll < 0.93:
        return rng.randint(15, 45)
    return rng.randint(46, 180)


def _divert_one(
    rng: random.Random, planned: list[Movement], changes: list[Change], home: str
) -> None:
    inbound = next(m for m in planned if m.arrival == home)
    changes[:] = [c for c in changes if c.mvt_id != inbound.mvt_id]
    changes.append(
        Change(
            inbound.sta - timedelta(minutes=30),
            inbound.mvt_id,
            {"FLT_STATUS": "DIV", "DIV_AP": "BSL", "REMARK": "DIVERTED BSL"},
        )
    )


class AodbSimulator:
    """Writes a `DayPlan` into the legacy table; `speed` is simulated seconds per real second."""

    def __init__(self, engine: Engine, plan: DayPlan, *, speed: float = 60.0) -> None:
        self.engine = engine
        self.plan = plan
        self.speed = speed
        self.applied = 0

    def install(self) -> None:
        """Create the legacy table and write the day's schedule (the 'seasonal' load)."""
        legacy_metadata.create_all(self.engine)
        now = datetime.now(UTC).replace(tzinfo=None)
        rows = [_schedule_row(m, now) for m in self.plan.movements]
        with self.engine.begin() as conn:
            conn.execute(insert(movements), rows)

    def apply(self, change: Change) -> None:
        values = {k: _naive(v) for k, v in change.values.items()}
        values["LAST_UPD"] = datetime.now(UTC).replace(tzinfo=None)
        values["ROW_VER"] = movements.c.ROW_VER + 1
        with self.engine.begin() as conn:
            conn.execute(
                update(movements).where(movements.c["MVT_ID"] == change.mvt_id).values(**values)
            )
        self.applied += 1

    def run(self, *, stop: Any = None, sim_start: datetime | None = None) -> int:
        """Apply every change in simulated time order, sleeping to keep the pace; returns count."""
        changes = self.plan.changes
        begin_sim = sim_start or (changes[0].at if changes else datetime.now(UTC))
        begin_real = time.monotonic()
        for change in changes:
            if stop is not None and stop.is_set():
                break
            due = (change.at - begin_sim).total_seconds() / self.speed
            wait = due - (time.monotonic() - begin_real)
            if wait > 0 and stop is not None and stop.wait(wait):
                break
            if wait > 0 and stop is None:
                time.sleep(wait)
            self.apply(change)
        return self.applied


def _naive(value: Any) -> Any:
    return value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) else value


def _schedule_row(m: Movement, now: datetime) -> dict[str, Any]:
    return {
        "MVT_ID": m.mvt_id,
        "AL_CODE": m.airline,
        "FLT_NO": m.number,
        "SCHED_DATE": (m.origin_date or m.std.date()).isoformat(),
        "DEP_AP": m.departure,
        "ARR_AP": m.arrival,
        "FLT_STATUS": "SCH",
        "STD_UTC": _naive(m.std),
        "STA_UTC": _naive(m.sta),
        "AC_TYPE": m.ac_type,
        "AC_REG": m.registration,
        "CODESHARES": m.codeshares,
        "TERMINAL": m.terminal,
        "LAST_UPD": now,
        "ROW_VER": 1,
    }
