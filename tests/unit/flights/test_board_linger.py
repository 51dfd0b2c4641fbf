"""When a flight leaves a FIDS board: departed ones after take-off, arrived ones after on-block."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jetbridge.flights.fids import Linger, board_row, leaves_at, on_board

LINGER = Linger(departed=timedelta(minutes=10), arrived=timedelta(minutes=20))


def view(status: str, **times: str) -> dict[str, Any]:
    nested: dict[str, dict[str, str]] = {}
    for name, value in times.items():
        milestone, kind = name.rsplit("_", 1)
        nested.setdefault(milestone, {})[kind] = value
    return {
        "flight_key": "LX0318-2026-11-24-ZRH-CDG", "version": 3, "flight": "LX318",
        "airline": "LX", "departure_airport": "ZRH", "arrival_airport": "CDG",
        "status": status, "times": nested,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("status", "times", "direction", "expected"),
    [
        ("departed", {"take_off_actual": "2026-11-24T07:05:00Z",
                      "off_block_actual": "2026-11-24T06:55:00Z"}, "departures",
         "2026-11-24T07:15:00Z"),
        ("departed", {"off_block_actual": "2026-11-24T06:55:00Z"}, "departures",
         "2026-11-24T07:05:00Z"),
        ("boarding", {"off_block_scheduled": "2026-11-24T06:55:00Z"}, "departures", None),
        ("cancelled", {"off_block_scheduled": "2026-11-24T06:55:00Z"}, "departures",
         "2026-11-24T07:05:00Z"),
        ("arrived", {"on_block_actual": "2026-11-24T09:00:00Z",
                     "touchdown_actual": "2026-11-24T08:52:00Z"}, "arrivals",
         "2026-11-24T09:20:00Z"),
        ("arrived", {"touchdown_actual": "2026-11-24T08:52:00Z"}, "arrivals",
         "2026-11-24T09:12:00Z"),
        ("operating", {"on_block_estimated": "2026-11-24T09:00:00Z"}, "arrivals", None),
        # a flight arrived at CDG has long left ZRH's departures board
        ("arrived", {"take_off_actual": "2026-11-24T07:05:00Z",
                     "on_block_actual": "2026-11-24T08:00:00Z"}, "departures",
         "2026-11-24T07:15:00Z"),
    ],
)  # fmt: skip
def test_when_a_flight_leaves_the_board(
    status: str, times: dict[str, str], direction: str, expected: str | None
) -> None:
    assert leaves_at(view(status, **times), direction=direction, linger=LINGER) == expected


def test_rows_are_shown_until_they_leave() -> None:
    row = board_row(
        view("departed", take_off_actual="2026-11-24T07:05:00Z"),
        direction="departures",
        linger=LINGER,
    )
    assert on_board(row, datetime(2026, 11, 24, 7, 14, 59, tzinfo=UTC))
    assert not on_board(row, datetime(2026, 11, 24, 7, 15, tzinfo=UTC))
    waiting = board_row(view("scheduled"), direction="departures")
    assert waiting["leaves_at"] is None and on_board(waiting, datetime.now(UTC))
