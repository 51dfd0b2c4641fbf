"""Parallel branches run at once; the output keeps branch order; a failed branch fails the
Parallel and stops the others; a resumed Parallel does nothing its earlier run finished."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

import pytest

from jetbridge.workflows import TaskFailed, execute


def branch(*states: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """A branch running `states` in order."""
    names = [name for name, _ in states]
    body = {}
    for position, (name, state) in enumerate(states):
        following = {"End": True} if position == len(states) - 1 else {"Next": names[position + 1]}
        body[name] = {**state, **following}
    return {"StartAt": names[0], "States": body}


def task(resource: str, **fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": resource, **fields}


def never(*resources: str) -> dict[str, Any]:
    """Handlers for a replay, which must not call them."""
    return {name: lambda payload: pytest.fail("a finished task ran again") for name in resources}


def parallel(*branches: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "StartAt": "P",
        "States": {"P": {"Type": "Parallel", "Branches": list(branches), "End": True, **fields}},
    }


def test_branches_run_at_once() -> None:
    # Each handler waits for the other: only branches running side by side get past it.
    meeting = threading.Barrier(2, timeout=5)

    def meet(name: str) -> Any:
        def run(payload: Any) -> Any:
            meeting.wait()
            return name

        return run

    definition = parallel(branch(("A", task("A"))), branch(("B", task("B"))))
    result = execute(definition, {}, {"A": meet("a"), "B": meet("b")})
    assert (result.status, result.output) == ("SUCCEEDED", ["a", "b"]), result.cause


def test_the_output_keeps_branch_order_whatever_finishes_first() -> None:
    # Each handler finishes only once the one it follows has finished: last branch first.
    finished_events = {value: threading.Event() for value in ("quick", "mid", "slow")}

    def after(previous: str | None, value: str) -> Any:
        def run(payload: Any) -> Any:
            assert previous is None or finished_events[previous].wait(5)
            return {"value": value, "input": payload}

        return run

    def record(event: dict[str, Any]) -> None:
        if event["type"] == "TaskSucceeded":
            finished_events[json.loads(event["taskSucceededEventDetails"]["output"])["value"]].set()

    definition = parallel(
        branch(("Slow", task("Slow"))),
        branch(("Quick", task("Quick")), ("Shape", {"Type": "Pass", "OutputPath": "$.value"})),
        branch(("Mid", task("Mid"))),
    )
    handlers = {
        "Slow": after("mid", "slow"),
        "Quick": after(None, "quick"),
        "Mid": after("quick", "mid"),
    }
    result = execute(definition, {"booking_id": "b1"}, handlers, on_event=record)
    assert result.output == [
        {"value": "slow", "input": {"booking_id": "b1"}},
        "quick",
        {"value": "mid", "input": {"booking_id": "b1"}},
    ]
    finished = [
        json.loads(e["taskSucceededEventDetails"]["output"])["value"]
        for e in result.history
        if e["type"] == "TaskSucceeded"
    ]
    assert finished == ["quick", "mid", "slow"]
    kinds = [e["type"] for e in result.history]
    started, succeeded = kinds.index("ParallelStateStarted"), kinds.index("ParallelStateSucceeded")
    assert started < succeeded == kinds.index("ParallelStateExited") - 1
    # Each branch is a line of its own: its first event follows ParallelStateStarted, and
    # names the branch.
    firsts = [e for e in result.history if "parallelBranch" in e]
    assert sorted(e["parallelBranch"]["index"] for e in firsts) == [0, 1, 2]
    assert {e["previousEventId"] for e in firsts} == {result.history[started]["id"]}


def failing_and_stopped(**fields: Any) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Branch 0 fails once branch 1's first task is under way; branch 1's second task must
    never run."""
    reached: list[str] = []
    releasing = threading.Event()

    def broken(payload: Any) -> Any:
        assert releasing.wait(5)
        raise TaskFailed("RefundRefused", "provider said no")

    def release(payload: Any) -> Any:
        releasing.set()
        time.sleep(0.3)
        return "released"

    handlers = {
        "Refund": broken,
        "Release": release,
        "Notify": lambda p: reached.append("notify"),
    }
    definition = parallel(
        branch(("Refund", task("Refund"))),
        branch(("Release", task("Release")), ("Notify", task("Notify"))),
        **fields,
    )
    return definition, handlers, reached


def test_a_failed_branch_fails_the_parallel_and_stops_the_others() -> None:
    definition, handlers, reached = failing_and_stopped()
    result = execute(definition, {}, handlers)
    assert (result.status, result.error, result.cause) == (
        "FAILED",
        "RefundRefused",
        "provider said no",
    )
    assert reached == []  # branch 1 stopped before its next state
    kinds = [e["type"] for e in result.history]
    assert "ParallelStateFailed" in kinds and "ParallelStateSucceeded" not in kinds
    assert kinds.count("TaskSucceeded") == 1  # Release, under way, finished unobserved


def test_a_catch_on_the_parallel_catches_a_branch_failure() -> None:
    definition, handlers, reached = failing_and_stopped(
        Catch=[{"ErrorEquals": ["RefundRefused"], "ResultPath": "$.error", "Next": "Handled"}]
    )
    del definition["States"]["P"]["End"]
    definition["States"]["P"]["Next"] = "Handled"
    definition["States"]["Handled"] = {"Type": "Pass", "End": True}
    result = execute(definition, {"booking_id": "b1"}, handlers)
    assert result.status == "SUCCEEDED"
    assert result.output == {
        "booking_id": "b1",
        "error": {"Error": "RefundRefused", "Cause": "provider said no"},
    }
    assert reached == []


def test_a_branch_stopped_in_a_wait_records_it_and_does_not_wait_on() -> None:
    definition = parallel(
        branch(("Break", task("Break"))),
        branch(("Rest", {"Type": "Wait", "Seconds": 5}), ("Late", task("Late"))),
    )

    resting = threading.Event()

    def broken(payload: Any) -> Any:
        assert resting.wait(5)
        raise TaskFailed("Broken", "")

    def record(event: dict[str, Any]) -> None:
        if event["type"] == "WaitStateEntered":
            resting.set()

    began = time.monotonic()
    handlers = {"Break": broken, "Late": lambda p: pytest.fail("ran after the failure")}
    result = execute(definition, {}, handlers, on_event=record)
    assert (result.status, result.error) == ("FAILED", "Broken")
    assert time.monotonic() - began < 2
    kinds = [e["type"] for e in result.history]
    assert kinds.index("WaitStateAborted") < kinds.index("ParallelStateFailed")
    again = execute(definition, {}, never("Break", "Late"), previous=result.history)
    assert (again.error, len(again.history)) == ("Broken", len(result.history))


def test_the_first_branch_to_fail_names_the_error() -> None:
    definition = parallel(
        branch(("Late", task("Late"))),
        branch(("Early", task("Early"))),
    )

    early_failed = threading.Event()

    def late(payload: Any) -> Any:
        assert early_failed.wait(5)
        raise TaskFailed("Late", "")

    def early(payload: Any) -> Any:
        raise TaskFailed("Early", "")

    def record(event: dict[str, Any]) -> None:
        if event["type"] == "TaskFailed":
            early_failed.set()

    result = execute(definition, {}, {"Late": late, "Early": early}, on_event=record)
    assert result.error == "Early"
    again = execute(definition, {}, never("Late", "Early"), previous=result.history)
    assert again.error == "Early"


def test_a_retried_parallel_runs_its_branches_again() -> None:
    attempts: Counter[str] = Counter()

    meeting = threading.Barrier(2, timeout=5)  # the first attempt fails once both ran

    def flaky(payload: Any) -> Any:
        attempts["flaky"] += 1
        if attempts["flaky"] == 1:
            meeting.wait()
            raise TaskFailed("Busy", "try again")
        return "ok"

    def steady(payload: Any) -> Any:
        attempts["steady"] += 1
        if attempts["steady"] == 1:
            meeting.wait()
        return "steady"

    definition = parallel(
        branch(("Flaky", task("Flaky"))),
        branch(("Steady", task("Steady"))),
        Retry=[{"ErrorEquals": ["Busy"], "IntervalSeconds": 0, "MaxAttempts": 1}],
    )
    handlers = {"Flaky": flaky, "Steady": steady}
    result = execute(definition, {}, handlers)
    assert (result.status, result.output) == ("SUCCEEDED", ["ok", "steady"]), result.cause
    assert attempts == Counter({"flaky": 2, "steady": 2})
    replayed = execute(definition, {}, never("Flaky", "Steady"), previous=result.history)
    assert (replayed.output, len(replayed.history)) == (["ok", "steady"], len(result.history))


class Crash(BaseException):
    """Stands for the process dying."""


def test_a_resumed_parallel_runs_no_finished_task_again() -> None:
    recorded: list[dict[str, Any]] = []
    calls: Counter[str] = Counter()
    refunded = threading.Event()

    def refund(payload: Any) -> Any:
        calls["refund"] += 1
        return "refunded"

    def cancel(payload: Any) -> Any:
        calls["cancel"] += 1
        if calls["cancel"] == 1:
            assert refunded.wait(5)
            raise Crash
        return "cancelled"

    def record(event: dict[str, Any]) -> None:
        recorded.append(event)
        if event["type"] == "TaskSucceeded":
            refunded.set()

    definition = parallel(
        branch(("Refund", task("Refund")), ("Refunded", {"Type": "Pass"})),
        branch(("Cancel", task("Cancel"))),
    )
    handlers = {"Refund": refund, "Cancel": cancel}
    with pytest.raises(Crash):
        execute(definition, {}, handlers, on_event=record, name="resumed")
    result = execute(definition, {}, handlers, previous=recorded, name="resumed")
    assert (result.status, result.output) == ("SUCCEEDED", ["refunded", "cancelled"])
    assert calls == Counter({"refund": 1, "cancel": 2})
    history = result.history
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    assert [e["type"] for e in history].count("ParallelStateStarted") == 1
    calls.clear()
    idle = execute(definition, {}, handlers, previous=history, name="resumed")
    assert (calls, idle.output, len(idle.history)) == (Counter(), result.output, len(history))


def without_line(history: list[dict[str, Any]], first: int) -> list[dict[str, Any]]:
    """The history as if the line whose first event is `first` had never started."""
    dropped = {first}
    for event in history:
        if event["previousEventId"] in dropped:
            dropped.add(event["id"])
    kept = [event for event in history if event["id"] not in dropped]
    renumbered = {event["id"]: number for number, event in enumerate(kept, 1)}
    renumbered[0] = 0
    return [
        dict(e, id=renumbered[e["id"]], previousEventId=renumbered[e["previousEventId"]])
        for e in kept
    ]


def test_a_failure_recorded_before_a_crash_stops_the_parallel_before_an_unstarted_branch() -> None:
    definition = parallel(
        branch(("Refund", task("Refund"))),
        branch(("Release", task("Release"))),
    )
    meeting = threading.Barrier(2, timeout=5)

    def refund(payload: Any) -> Any:
        meeting.wait()
        raise TaskFailed("RefundRefused", "")

    first = execute(definition, {}, {"Refund": refund, "Release": lambda p: meeting.wait()})
    assert first.error == "RefundRefused"
    # Cut after the failure was stored, in a run where the second branch had not started yet.
    release = next(e["id"] for e in first.history if e.get("parallelBranch", {}).get("index") == 1)
    trimmed = without_line(first.history, release)
    recorded = trimmed[: next(i for i, e in enumerate(trimmed) if e["type"] == "TaskFailed") + 1]
    calls: list[str] = []
    handlers = {"Refund": calls.append, "Release": calls.append}
    resumed = execute(definition, {}, handlers, previous=recorded)
    assert (resumed.status, resumed.error, calls) == ("FAILED", "RefundRefused", [])
    assert not any(e.get("parallelBranch", {}).get("index") == 1 for e in resumed.history)


def sequentially_recorded(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A history as earlier versions wrote it: the branches one after another in the
    Parallel's scope, every event linked to the one before it."""
    line: dict[int, int] = {}  # event id -> branch index (-1: the machine)
    for event in history:
        marker = event.get("parallelBranch")
        line[event["id"]] = marker["index"] if marker else line.get(event["previousEventId"], -1)
    started = next(e["id"] for e in history if e["type"] == "ParallelStateStarted")
    before = [e for e in history if line[e["id"]] == -1 and e["id"] <= started]
    after = [e for e in history if line[e["id"]] == -1 and e["id"] > started]
    branches = sorted({index for index in line.values() if index >= 0})
    ordered = before + [e for b in branches for e in history if line[e["id"]] == b] + after
    return [
        {k: v for k, v in dict(e, id=n, previousEventId=n - 1).items() if k != "parallelBranch"}
        for n, e in enumerate(ordered, 1)
    ]


def test_a_parallel_recorded_one_branch_after_another_resumes_as_written() -> None:
    definition = parallel(
        branch(("Refund", task("Refund"))),
        branch(("Cancel", task("Cancel"))),
    )
    handlers = {"Refund": lambda p: "refunded", "Cancel": lambda p: "cancelled"}
    legacy = sequentially_recorded(execute(definition, {}, handlers).history)
    cut = next(i for i, e in enumerate(legacy) if e["type"] == "TaskSucceeded")
    calls: list[str] = []
    handlers = {"Refund": lambda p: calls.append("refund"), "Cancel": lambda p: "cancelled"}
    resumed = execute(definition, {}, handlers, previous=legacy[: cut + 2])
    assert (resumed.status, resumed.output) == ("SUCCEEDED", ["refunded", "cancelled"])
    assert calls == []  # the first branch's task had finished


def test_branches_and_iterations_nest() -> None:
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "MaxConcurrency": 2,
                "ItemProcessor": parallel(
                    branch(("Double", task("Double"))),
                    branch(("Square", task("Square"))),
                ),
                "End": True,
            }
        },
    }

    def slow(function: Any) -> Any:
        return lambda n: time.sleep(0.01 * (4 - n)) or function(n)

    handlers = {"Double": slow(lambda n: 2 * n), "Square": slow(lambda n: n * n)}
    result = execute(definition, [1, 2, 3], handlers)
    assert result.output == [[2, 1], [4, 4], [6, 9]]
    again = execute(definition, [1, 2, 3], never("Double", "Square"), previous=result.history)
    assert (again.output, len(again.history)) == (result.output, len(result.history))


def test_a_parallel_stopped_by_its_enclosing_map_records_its_abort() -> None:
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemProcessor": parallel(branch(("Work", task("Work")), ("After", task("After")))),
                "End": True,
            }
        },
    }

    working = threading.Event()

    def work(n: int) -> int:
        if n == 0:
            assert working.wait(5)  # item 1's Parallel is under way when item 0 fails
            raise TaskFailed("Broken", "item 0")
        working.set()
        time.sleep(0.3)
        return n

    handlers = {"Work": work, "After": lambda n: pytest.fail("ran after the failure")}
    result = execute(definition, [0, 1], handlers)
    assert (result.status, result.error) == ("FAILED", "Broken")
    kinds = [e["type"] for e in result.history]
    assert kinds.count("ParallelStateAborted") == 1 and kinds.count("ParallelStateFailed") == 1
    assert kinds.index("ParallelStateAborted") < kinds.index("MapIterationAborted")
    again = execute(definition, [0, 1], handlers, previous=result.history)
    assert (again.error, len(again.history)) == ("Broken", len(result.history))
