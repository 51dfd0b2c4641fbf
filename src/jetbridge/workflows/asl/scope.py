"""Where an execution stands: the shared runtime, one scope per line of execution (the machine,
each Map iteration, each Parallel branch), and the keyed replay that lets a resumed execution
skip what it did before.

Every history event belongs to a scope and has a key: the scope's path and the event's position
within that scope. A scope runs sequentially, so the same definition over the same recorded
outcomes produces the same keys however concurrent lines interleave. A resumed run recognises
the events it recorded before by key, so no finished task runs again.

Keys are not stored: `previousEventId` links each event to the one before it in its own scope
(as Step Functions does for concurrent iterations and branches), and `index_history` recovers
every key from a stored history alone. A line starts with an event that names its place:
`MapIterationStarted` (its `index`), or, for a branch, whose first event Step Functions does not
mark, the `parallelBranch` (`name`, `index`) that jetbridge adds to that event.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from jetbridge.workflows.asl.maprun import MapRuns

Handler = Callable[[Any], Any]
Path = tuple[int, ...]
Key = tuple[Path, int]
ITERATION_ENDS = {"MapIterationSucceeded", "MapIterationFailed", "MapIterationAborted"}
BRANCH = "parallelBranch"
# Where a stopped line recorded that it stopped: a resumed run stops there again.
STOPS = {"MapIterationAborted", "TaskStateAborted", "WaitStateAborted"}
# A redrive's event: it names the events of the unsuccessful attempt that it supersedes.
REDRIVEN = "ExecutionRedriven"
SUPERSEDED = "supersededEventIds"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


class Interrupt(Exception):
    """Control flow of the runtime itself; never a state's error, never caught by Catch."""


class Suspended(Interrupt):
    """Callback tasks wait for their answers, or a Wait for its time: the execution can be
    parked until `wake_at`."""

    def __init__(self, tokens: list[str], wake_at: float) -> None:
        super().__init__(", ".join(tokens))
        self.tokens = tokens
        self.wake_at = wake_at


class Frontier(Interrupt):
    """A replay-only scope reached work its earlier run had not recorded."""


class Halted(Interrupt):
    """The execution is stopping (a worker failure, a timeout): record nothing more."""


class IterationAborted(Interrupt):
    """A Map or Parallel stops its remaining lines because another one failed."""


class TimedOut(Interrupt):
    """The state machine's own TimeoutSeconds ran out."""


class HistoryDiverged(Interrupt):
    """A resumed run produced an event other than the one recorded at the same place."""


@dataclass
class Answer:
    """How a callback task ended: `succeeded`, `failed` or `timed_out`."""

    kind: str
    output: Any = None
    error: str = ""
    cause: str = ""


class TaskTokens(Protocol):
    """What a durable engine provides for `.waitForTaskToken` tasks."""

    def token_for(self, key: str) -> str:
        """The task token of the callback task at `key` (the same on every replay)."""

    def issue(self, token: str, *, state: str, timeout: int, heartbeat: int | None) -> None:
        """Start waiting for `token` (idempotent: a redelivered token keeps its clocks)."""

    def poll(self, token: str) -> Answer | float:
        """The answer, or a timeout once a deadline passed, or the moment to look again."""

    def cancel(self, token: str) -> None:
        """The task was stopped: later answers for `token` are refused."""


@dataclass
class Runtime:
    """What every scope of one execution shares."""

    handlers: dict[str, Handler]
    sleep: Callable[[float], None] | None = None  # None: real sleeps that a stop cuts short
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    rng: random.Random = field(default_factory=random.Random)
    history: list[dict[str, Any]] = field(default_factory=list)
    known: dict[Key, dict[str, Any]] = field(default_factory=dict)
    on_event: Callable[[dict[str, Any]], None] | None = None
    tokens: TaskTokens | None = None
    machines: dict[str, dict[str, Any]] = field(default_factory=dict)
    object_store: FilePath | None = None  # the directory Distributed Map reads and writes
    # Reads an ItemReader's file:// or https:// URL (None: such URLs are refused).
    read_url: Callable[[str], bytes] | None = None
    # Runs a Distributed Map's child executions (None: in memory, in this process).
    map_runs: MapRuns | None = None
    deadline: float | None = None  # epoch seconds: the machine's TimeoutSeconds
    poll_interval: float = 0.2
    halted: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    redrive_count: int = 0
    redrive_time: str | None = None  # when the latest redrive happened (ISO 8601)

    def resume_from(self, history: list[dict[str, Any]]) -> None:
        self.history = list(history)
        self.known = index_history(history)
        redrives = [event for event in history if event["type"] == REDRIVEN]
        if redrives:
            self.redrive_count = len(redrives)
            self.redrive_time = redrives[-1]["timestamp"]

    def append(
        self, key: Key, kind: str, previous: int, details: Mapping[str, Any]
    ) -> dict[str, Any]:
        with self.lock:
            number = len(self.history) + 1
            record = {
                "id": number,
                "previousEventId": previous,
                "timestamp": iso(self.now()),
                "type": kind,
                **details,
            }
            self.history.append(record)
            self.known[key] = record
            if self.on_event is not None:
                self.on_event(record)
        return record

    def check_deadline(self) -> None:
        if self.deadline is not None and time.time() > self.deadline:
            raise TimedOut


class Scope:
    """One line of execution: its events are sequential and keyed by position."""

    def __init__(
        self,
        runtime: Runtime,
        path: Path = (),
        *,
        last: int = 0,
        aborts: tuple[threading.Event, ...] = (),
        replay_only: bool = False,
        opening: Mapping[str, Any] | None = None,
    ) -> None:
        self.runtime = runtime
        self.path = path
        self.count = 0
        self.last = last
        self.aborts = aborts
        self.replay_only = replay_only
        self.opening = opening or {}  # added to the scope's first event: where the line starts
        self.replayed = False  # whether the latest event came from the recorded history

    def next_key(self) -> Key:
        return (self.path, self.count)

    def peek(self) -> dict[str, Any] | None:
        """The recorded event at this scope's next position, if an earlier run got there."""
        return self.runtime.known.get(self.next_key())

    def event(self, kind: str, **details: Any) -> dict[str, Any]:
        """Record an event, or step over the same event recorded by an earlier run."""
        recorded = self.peek()
        if recorded is not None:
            if recorded["type"] != kind:
                raise HistoryDiverged(
                    f"event {recorded['id']} is {recorded['type']}, the resumed run made {kind}"
                )
            self.replayed = True
        else:
            if self.runtime.halted.is_set():
                raise Halted
            if self.replay_only:
                raise Frontier
            if self.count == 0:
                details = {**details, **self.opening}
            recorded = self.runtime.append(self.next_key(), kind, self.last, details)
            self.replayed = False
        self.count += 1
        self.last = recorded["id"]
        return recorded

    def checkpoint(self) -> None:
        """Before anything the earlier run did not record: stop if this scope must stop."""
        recorded = self.peek()
        if recorded is not None:
            if recorded["type"] in STOPS:
                raise IterationAborted
            return  # the earlier run went on from here
        if self.runtime.halted.is_set():
            raise Halted
        if self.replay_only:
            raise Frontier
        if any(abort.is_set() for abort in self.aborts):
            raise IterationAborted

    def child(
        self,
        seq: int,
        index: int,
        abort: threading.Event,
        replay_only: bool,
        opening: Mapping[str, Any] | None = None,
    ) -> Scope:
        """The scope of one Map iteration or Parallel branch, opened by the event at `seq` in
        this scope."""
        return Scope(
            self.runtime,
            (*self.path, seq, index),
            last=self.last,
            aborts=(*self.aborts, abort),
            replay_only=replay_only or self.replay_only,
            opening=opening,
        )


def key_text(key: Key) -> str:
    path, position = key
    return ".".join(str(part) for part in (*path, position))


def superseded(history: list[dict[str, Any]]) -> set[int]:
    """The ids of the events that redrives superseded (they stay in the history)."""
    return {
        int(number)
        for event in history
        if event["type"] == REDRIVEN
        for number in event.get(SUPERSEDED, [])
    }


def index_history(history: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    """The key of every event of a stored history, recovered through `previousEventId`
    (a redrive's event and the events it superseded have none: a redriven run makes them
    again)."""
    keys: dict[int, Key] = {}
    kinds: dict[int, str] = {}
    counts: dict[Path, int] = {}
    known: dict[Key, dict[str, Any]] = {}
    skipped = superseded(history)
    for event in history:
        if event["type"] == REDRIVEN or event["id"] in skipped:
            continue
        previous = int(event.get("previousEventId") or 0)
        path, position = keys.get(previous, ((), -1))
        if kinds.get(previous) in ITERATION_ENDS:
            # Histories written one iteration after another link an iteration's first event
            # (or the Map's end) to the end of the iteration before.
            path, position = path[:-2], path[-2]
        if event["type"] == "MapIterationStarted":
            index = int(event["mapIterationStartedEventDetails"]["index"])
            path = (*path, position, index)
        elif BRANCH in event:
            path = (*path, position, int(event[BRANCH]["index"]))
        number = counts.get(path, 0)
        counts[path] = number + 1
        keys[event["id"]] = (path, number)
        kinds[event["id"]] = event["type"]
        known[(path, number)] = event
    return known
