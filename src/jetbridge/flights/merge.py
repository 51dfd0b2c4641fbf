"""One versioned truth per flight: idempotent, per-field, newest-source-time-wins merging.

- The same message twice changes nothing.
- An older message never overwrites a field set from a newer one (source time, then sequence).
- A missing value never erases a known one; only an explicit clear does.
- Every effective change raises the version by exactly one and derives the events passengers
  and screens care about.
- What a source sent but no canonical field holds (an unknown code, a newer element) is kept
  raw beside the state, by path, newest source time first; it raises no version and no event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jetbridge.flights.delay_codes import meaning
from jetbridge.flights.model import (
    FIELDS,
    FlightIdentity,
    FlightStatus,
    InvalidFlight,
    nested,
    normalise_value,
)

DELAY_THRESHOLD = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Update:
    """What one source said about one flight at one time."""

    identity: FlightIdentity
    source: str
    source_time: datetime
    fields: Mapping[str, Any] = field(default_factory=dict)
    clears: frozenset[str] = frozenset()
    sequence: int = 0
    # Raw values no canonical field holds, by the path where the message carried them.
    unknown: Mapping[str, str] = field(default_factory=dict)
    # A possible duplicate (telex PDM): it may fill fields nobody set yet, never change one.
    only_missing: bool = False
    # Why some of `unknown` was not understood, by path, where there is more to say (not stored).
    reasons: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source_time.tzinfo is None:
            raise InvalidFlight("source_time: a time with a UTC offset is required")
        unknown = sorted((set(self.fields) | self.clears) - FIELDS)
        if unknown:
            raise InvalidFlight(f"{unknown[0]}: not a field of the canonical flight leg")

    def to_json(self) -> dict[str, Any]:
        return {
            "flight_key": self.identity.key,
            "identity": self.identity.to_json(),
            "source": self.source,
            "source_time": self.source_time.isoformat(),
            "sequence": self.sequence,
            "fields": {k: normalise_value(k, v) for k, v in self.fields.items() if v is not None},
            "clears": sorted(self.clears),
            **({"unknown": dict(self.unknown)} if self.unknown else {}),
            **({"only_missing": True} if self.only_missing else {}),
        }


@dataclass(frozen=True, slots=True)
class FlightState:
    identity: FlightIdentity
    version: int
    fields: dict[str, Any]
    provenance: dict[str, tuple[str, str, int]]  # field -> (source, source time ISO, sequence)
    unknown: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # path -> (source,
    # source time ISO, raw value): what sources sent that no canonical field holds

    @property
    def status(self) -> str:
        return effective_status(self.fields)

    def view(self) -> dict[str, Any]:
        """The JSON every channel shows: identity, version, derived status and all fields."""
        body = nested(self.fields)
        for delay in body["delays"]:
            delay["meaning"] = meaning(delay.get("code"))
        return {
            "flight_key": self.identity.key,
            "flight": self.identity.display_number,
            **self.identity.to_json(),
            "version": self.version,
            **body,
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class DerivedEvent:
    type: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MergeResult:
    state: FlightState
    changed: dict[str, tuple[Any, Any]]
    events: list[DerivedEvent]
    kept: bool = False  # unknown raw values changed (stored without a new version)


def apply(current: FlightState | None, update: Update) -> MergeResult:
    """Merge `update` into `current` (None for a flight not seen yet)."""
    fields = dict(current.fields) if current else {}
    provenance = dict(current.provenance) if current else {}
    stamp = (update.source_time.isoformat(), update.sequence)
    changed: dict[str, tuple[Any, Any]] = {}
    wanted = {k: normalise_value(k, v) for k, v in update.fields.items() if v is not None}
    wanted |= dict.fromkeys(update.clears)
    for name, value in wanted.items():
        known = provenance.get(name)
        if known is not None and (known[1], known[2]) > stamp:
            continue
        if update.only_missing and name in fields:
            continue
        if fields.get(name) == value:
            continue
        changed[name] = (fields.get(name), value)
        provenance[name] = (update.source, stamp[0], stamp[1])
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    unknown, kept = _keep_unknown(current.unknown if current else {}, update, stamp[0])
    if current is not None and not changed:
        if not kept:
            return MergeResult(current, {}, [])
        quiet = FlightState(current.identity, current.version, fields, provenance, unknown)
        return MergeResult(quiet, {}, [], kept=True)
    version = (current.version if current else 0) + 1
    state = FlightState(update.identity, version, fields, provenance, unknown)
    return MergeResult(state, changed, derive_events(current, state, changed), kept=kept)


def _keep_unknown(
    before: Mapping[str, tuple[str, str, str]], update: Update, stamp: str
) -> tuple[dict[str, tuple[str, str, str]], bool]:
    """The raw values kept by path: a newer source time replaces an older one's."""
    unknown = dict(before)
    kept = False
    for path, raw in update.unknown.items():
        known = unknown.get(path)
        if known is not None and (known[1] > stamp or known[2] == raw):
            continue
        if known is not None and update.only_missing:
            continue
        unknown[path] = (update.source, stamp, raw)
        kept = True
    return unknown, kept


def effective_status(fields: Mapping[str, Any]) -> str:
    """The status passengers see: explicit cancellations and diversions win, then milestones."""
    explicit = fields.get("status")
    if explicit in {FlightStatus.CANCELLED, FlightStatus.DIVERTED, FlightStatus.NOT_OPERATING}:
        return str(explicit)
    if (
        fields.get("times.on_block.actual")
        or fields.get("times.touchdown.actual")
        or explicit == "arrived"
    ):
        return FlightStatus.ARRIVED.value
    if (
        fields.get("times.off_block.actual")
        or fields.get("times.take_off.actual")
        or explicit == "departed"
    ):
        return FlightStatus.DEPARTED.value
    if fields.get("times.boarding_start.actual") or explicit == "boarding":
        return FlightStatus.BOARDING.value
    if explicit == "delayed" or delay_of(fields) >= DELAY_THRESHOLD:
        return FlightStatus.DELAYED.value
    return str(explicit or FlightStatus.SCHEDULED.value)


def delay_of(fields: Mapping[str, Any]) -> timedelta:
    scheduled = fields.get("times.off_block.scheduled")
    later = fields.get("times.off_block.actual") or fields.get("times.off_block.estimated")
    if not scheduled or not later:
        return timedelta(0)
    return _time(later) - _time(scheduled)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


_STATUS_EVENTS = {
    FlightStatus.DELAYED.value: "flight.delayed",
    FlightStatus.BOARDING.value: "flight.boarding",
    FlightStatus.DEPARTED.value: "flight.departed",
    FlightStatus.ARRIVED.value: "flight.arrived",
    FlightStatus.CANCELLED.value: "flight.cancelled",
    FlightStatus.DIVERTED.value: "flight.diverted",
}
_FIELD_EVENTS = {
    "gate": "flight.gate_changed",
    "baggage_belt": "flight.baggage_belt_assigned",
    "times.final_call.actual": "flight.final_call",
    "times.gate_close.actual": "flight.gate_closed",
}


def derive_events(
    before: FlightState | None, after: FlightState, changed: dict[str, tuple[Any, Any]]
) -> list[DerivedEvent]:
    view = after.view()
    common = {"flight_key": after.identity.key, "version": after.version, "flight": view}
    events = []
    if before is None:
        events.append(DerivedEvent("flight.scheduled", dict(common)))
    events.append(DerivedEvent("flight.updated", {**common, "changed": sorted(changed)}))
    old_status = before.status if before else None
    if after.status != old_status and after.status in _STATUS_EVENTS:
        events.append(
            DerivedEvent(_STATUS_EVENTS[after.status], {**common, "previous_status": old_status})
        )
    if (
        any(name.startswith("times.") and name.endswith(".estimated") for name in changed)
        and before is not None
    ):
        estimates = {k: v for k, v in changed.items() if k.endswith(".estimated")}
        events.append(
            DerivedEvent(
                "flight.estimate_changed",
                {**common, "estimates": {k: v[1] for k, v in estimates.items()}},
            )
        )
    for name, kind in _FIELD_EVENTS.items():
        if name in changed and changed[name][1] is not None:
            events.append(
                DerivedEvent(
                    kind, {**common, "previous": changed[name][0], "current": changed[name][1]}
                )
            )
    return events
