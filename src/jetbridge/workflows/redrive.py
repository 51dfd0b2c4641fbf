"""Redrive (Step Functions' RedriveExecution): an execution that FAILED, TIMED_OUT or was
ABORTED goes on from its unsuccessful step, with the same input and definition.

The history stays an append-only record: a redrive appends an `ExecutionRedriven` event that
names the events of the unsuccessful attempt it supersedes (`supersededEventIds`, a jetbridge
addition). Replay skips those, so the redriven run steps over everything that succeeded and
makes the rest again, in the places the superseded events held:

- in each line of execution (the machine, a Map iteration, a Parallel branch), the state that
  was entered and never exited, with everything after it, is done again;
- a Map or Parallel state that did not finish keeps its start: its iterations and branches that
  succeeded are replayed, the failed or aborted ones run again (the same rule, line by line);
- a line with no unfinished state loses only the end that recorded its failure or abort.
"""

from __future__ import annotations

from typing import Any

from jetbridge.workflows.asl.scope import Key, Path, index_history

FANOUTS = {"MapStateEntered", "ParallelStateEntered"}
FANOUT_STARTS = {"MapStateStarted", "ParallelStateStarted"}
# The end of an unsuccessful line: a redrive takes it back.
UNSUCCESSFUL_ENDS = {
    "ExecutionFailed",
    "ExecutionTimedOut",
    "ExecutionAborted",
    "MapIterationFailed",
    "MapIterationAborted",
}
REDRIVABLE = {"FAILED", "TIMED_OUT", "ABORTED"}
REDRIVABLE_SECONDS = 14 * 24 * 3600  # Step Functions redrives within 14 days of the stop
MAX_HISTORY_EVENTS = 25_000  # and not once the history reached its event limit


def supersede(history: list[dict[str, Any]]) -> list[int]:
    """The ids of the events a redrive of this history supersedes, in order."""
    known = index_history(history)
    lines: dict[Path, list[tuple[int, dict[str, Any]]]] = {}
    for (path, position), event in known.items():
        lines.setdefault(path, []).append((position, event))
    for events in lines.values():
        events.sort(key=lambda pair: pair[0])
    ids: list[int] = []
    for path in _roots(lines):
        ids.extend(_line(path, lines, known))
    return sorted(ids)


def _roots(lines: dict[Path, list[tuple[int, dict[str, Any]]]]) -> list[Path]:
    """The machine's line (and the diverged-history marker's, if any)."""
    return [path for path in lines if len(path) <= 1]


def _line(
    path: Path,
    lines: dict[Path, list[tuple[int, dict[str, Any]]]],
    known: dict[Key, dict[str, Any]],
) -> list[int]:
    events = lines.get(path, [])
    open_at = _unfinished(events)
    if open_at is None:
        tail = len(events)
        while tail > 0 and events[tail - 1][1]["type"] in UNSUCCESSFUL_ENDS:
            tail -= 1
        return [event["id"] for _, event in events[tail:]]
    position, entered = events[open_at]
    following = events[open_at + 1][1]["type"] if open_at + 1 < len(events) else ""
    if entered["type"] in FANOUTS and following in FANOUT_STARTS:
        # Keep the state's entry and start; its lines hang on the start's position.
        started = events[open_at + 1][0]
        ids = [event["id"] for _, event in events[open_at + 2 :]]
        for child in lines:
            if len(child) == len(path) + 2 and child[: len(path) + 1] == (*path, started):
                ids.extend(_line(child, lines, known))
        return ids
    ids = [event["id"] for _, event in events[open_at:]]
    # Lines opened by the superseded events go too.
    for child in lines:
        below = len(child) > len(path) and child[: len(path)] == path
        if below and child[len(path)] >= position:
            ids.extend(event["id"] for _, event in lines[child])
    return ids


def _unfinished(events: list[tuple[int, dict[str, Any]]]) -> int | None:
    """Where the last state entered and never exited in this line was entered."""
    entered: int | None = None
    for index, (_, event) in enumerate(events):
        kind = event["type"]
        if kind.endswith("StateEntered"):
            entered = index
        elif kind.endswith("StateExited"):
            entered = None
    return entered
