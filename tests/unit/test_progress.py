"""Progress of long commands: plain lines when stderr is not a terminal, a rich bar when it is."""

from __future__ import annotations

import io

import pytest

from jetbridge import progress as progress_module
from jetbridge.progress import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_say_started_then_done_with_the_counts() -> None:
    out = io.StringIO()
    with progress("importing schedules", total=3, unit="files", stream=out) as shown:
        for n in range(3):
            shown.advance(note=f"{(n + 1) * 10} legs read")
    lines = out.getvalue().splitlines()
    assert lines[0] == "importing schedules: started"
    assert lines[-1].startswith("importing schedules: done: 3/3 files, 30 legs read (")
    assert lines[-1].endswith(" s)")
    assert len(lines) == 2  # quick work: no lines in between


def test_plain_lines_in_between_come_at_most_every_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    monkeypatch.setattr(progress_module, "clock", lambda: now[0])
    monkeypatch.setattr(progress_module, "PLAIN_INTERVAL", 3.0)
    out = io.StringIO()
    with progress("rotating data keys", unit="bookings", stream=out) as shown:
        for _ in range(7):
            now[0] += 1.0
            shown.advance()
    lines = out.getvalue().splitlines()
    assert lines == [
        "rotating data keys: started",
        "rotating data keys: 3 bookings (3.0 s)",
        "rotating data keys: 6 bookings (6.0 s)",
        "rotating data keys: done: 7 bookings (7.0 s)",
    ]


def test_work_that_fails_or_raises_ends_with_stopped() -> None:
    out = io.StringIO()
    with progress("ingesting mvt", total=2, unit="files", stream=out) as shown:
        shown.advance()
        shown.fail()
    assert out.getvalue().splitlines()[-1].startswith("ingesting mvt: stopped: 1/2 files")
    out = io.StringIO()
    with pytest.raises(KeyError), progress("replaying r1", stream=out):
        raise KeyError("x")
    assert out.getvalue().splitlines()[-1].startswith("replaying r1: stopped: 0 items")


def test_a_terminal_gets_a_rich_progress_bar() -> None:
    out = Terminal()
    with progress("replaying r1", total=40, unit="events", stream=out) as shown:
        shown.update(40, note="completed")
    text = out.getvalue()
    assert "replaying r1" in text
    assert "40/40" in text
    assert "completed" in text
    assert "started" not in text  # no plain lines on a terminal
