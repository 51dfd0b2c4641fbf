"""MVT RR (return to ramp) and FR (forced return from airborne) in the shapes senders use
(`RR1230`, `RR`, `FR1315/1325`, `FR/1325`, `FR1315`, `FR`, as listed by the imsg parser written
at Polet Airlines), and malformed ones kept raw with the reason."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jetbridge.flights.feeds.mvt import parse_mvt

RECEIVED = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
DEPARTED = ["times.off_block.actual", "times.take_off.actual"]


def mvt(element: str) -> str:
    return f"MVT\nYQ752/14.VQBGC.DME\n{element}\n"


@pytest.mark.parametrize(
    ("element", "remarks"), [("RR1230", "returned to ramp 12:30Z"), ("RR", "returned to ramp")]
)
def test_return_to_ramp_withdraws_the_departure(element: str, remarks: str) -> None:
    (update,) = parse_mvt(mvt(element), received_at=RECEIVED)
    assert update.departure_airport == "DME"
    assert update.fields["status"] == "delayed"
    assert update.fields["remarks"] == remarks
    assert sorted(update.clears) == DEPARTED
    update.arrival_airport = "VOZ"  # as the hub completes it from the schedule
    assert sorted(update.to_update().clears) == DEPARTED


def test_a_departure_and_a_return_to_ramp_in_one_message_leave_no_departure() -> None:
    (update,) = parse_mvt(mvt("AD1210\nRR1230"), received_at=RECEIVED)
    assert "times.off_block.actual" not in update.fields
    assert sorted(update.clears) == DEPARTED


@pytest.mark.parametrize(
    ("element", "touchdown", "on_block", "remarks"),
    [
        ("FR1315/1325", "2026-03-14T13:15:00+00:00", "2026-03-14T13:25:00+00:00", "13:15Z/13:25Z"),
        ("FR/1325", None, "2026-03-14T13:25:00+00:00", "/13:25Z"),
        ("FR1315", "2026-03-14T13:15:00+00:00", None, "13:15Z"),
        ("FR", None, None, ""),
    ],
)
def test_forced_return_ends_the_flight_at_its_origin(
    element: str, touchdown: str | None, on_block: str | None, remarks: str
) -> None:
    (update,) = parse_mvt(mvt(element), received_at=RECEIVED)
    fields = update.fields
    assert (fields["status"], fields["diversion_airport"]) == ("diverted", "DME")
    assert _iso(fields.get("times.touchdown.actual")) == touchdown
    assert _iso(fields.get("times.on_block.actual")) == on_block
    assert fields["remarks"] == f"returned from airborne {remarks}".strip()
    assert update.clears == set()


@pytest.mark.parametrize(
    ("element", "reason"),
    [
        ("RR1230/1240", "RR takes at most one time"),
        ("FR1315/1325/1330", "FR takes at most two times"),
        ("RR2590", "time must be HHMM or DDHHMM"),
        ("FR13X5", "time must be HHMM or DDHHMM"),
    ],
)
def test_a_malformed_return_is_kept_raw_and_changes_nothing(element: str, reason: str) -> None:
    (update,) = parse_mvt(mvt(element), received_at=RECEIVED)
    code = element[:2]
    assert update.unknown == {f"MVT/{code}": element}
    assert reason in update.reasons[f"MVT/{code}"]
    assert "status" not in update.fields and update.clears == set()


def _iso(value: object) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None
