"""Progress of long commands (key rotation, replays, imports) on stderr: a `rich` progress bar
when stderr is a terminal, else a few plain lines, so logs and scripts stay readable.

Plain lines: `<what>: started`, then at most one `<what>: <done>[/<total>] [<note>] (<s> s)`
every PLAIN_INTERVAL seconds, and `<what>: done: ...` (or `<what>: stopped: ...` when the
work raised) at the end. Standard output is left to the command's result.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

PLAIN_INTERVAL = 5.0


def clock() -> float:
    return time.monotonic()


class Tracker:
    """What a long command reports: how far it is, out of how much, and a note in words."""

    def __init__(self, description: str, total: int | None, unit: str) -> None:
        self.description = description
        self.total = total
        self.unit = unit
        self.completed = 0
        self.note = ""
        self.started = clock()
        self.failed = False

    def update(
        self, completed: int | None = None, *, total: int | None = None, note: str | None = None
    ) -> None:
        if completed is not None:
            self.completed = completed
        if total is not None:
            self.total = total
        if note is not None:
            self.note = note
        self.shown()

    def advance(self, amount: int = 1, *, note: str | None = None) -> None:
        self.update(self.completed + amount, note=note)

    def fail(self) -> None:
        """The work ends unfinished: the last line says `stopped`, not `done`."""
        self.failed = True

    def summary(self) -> str:
        count = f"{self.completed}/{self.total}" if self.total is not None else str(self.completed)
        text = f"{count} {self.unit}"
        if self.note:
            text += f", {self.note}"
        return f"{text} ({clock() - self.started:.1f} s)"

    def shown(self) -> None:
        """Draw the new state (each kind of tracker its own way)."""


class _Plain(Tracker):
    def __init__(self, description: str, total: int | None, unit: str, stream: TextIO) -> None:
        super().__init__(description, total, unit)
        self.stream = stream
        self.last = self.started
        self.line("started")

    def line(self, text: str) -> None:
        print(f"{self.description}: {text}", file=self.stream, flush=True)

    def shown(self) -> None:
        now = clock()
        if now - self.last >= PLAIN_INTERVAL:
            self.last = now
            self.line(self.summary())


class _Rich(Tracker):
    def __init__(self, description: str, total: int | None, unit: str, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        super().__init__(description, total, unit)
        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TimeElapsedColumn(),
            TextColumn("{task.fields[note]}"),
            console=Console(file=stream),
        )
        self.task = self.bar.add_task(description, total=total, note="")
        self.bar.start()

    def shown(self) -> None:
        self.bar.update(self.task, completed=self.completed, total=self.total, note=self.note)

    def stop(self) -> None:
        self.shown()
        self.bar.stop()


@contextmanager
def progress(
    description: str,
    *,
    total: int | None = None,
    unit: str = "items",
    stream: TextIO | None = None,
) -> Iterator[Tracker]:
    """Report a long piece of work on `stream` (stderr by default) while the block runs."""
    out = stream if stream is not None else sys.stderr
    if out.isatty():
        tracker: Tracker = _Rich(description, total, unit, out)
    else:
        tracker = _Plain(description, total, unit, out)
    try:
        yield tracker
    except BaseException:
        _finish(tracker, "stopped")
        raise
    _finish(tracker, "stopped" if tracker.failed else "done")


def _finish(tracker: Tracker, how: str) -> None:
    if isinstance(tracker, _Rich):
        tracker.stop()
    elif isinstance(tracker, _Plain):
        tracker.line(f"{how}: {tracker.summary()}")
