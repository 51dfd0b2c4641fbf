"""An event's time is written in UTC with milliseconds and a Z, whatever offset it was given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from jetbridge.events.envelope import CloudEvent


def test_times_are_written_in_utc_with_a_z() -> None:
    moments = {
        datetime(2026, 3, 1, 9, 30, 5, 678901, tzinfo=UTC): "2026-03-01T09:30:05.678Z",
        datetime(2026, 3, 1, 11, 30, 5, tzinfo=timezone(timedelta(hours=2))): (
            "2026-03-01T09:30:05.000Z"
        ),
        datetime(2026, 3, 1, 0, 0, tzinfo=timezone(timedelta(hours=-5))): (
            "2026-03-01T05:00:00.000Z"
        ),
    }
    for moment, written in moments.items():
        event = CloudEvent(source="test", type="flight.gate_changed", time=moment)
        assert event.to_dict()["time"] == written
