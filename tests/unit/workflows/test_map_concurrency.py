"""Map iterations run concurrently up to MaxConcurrency; results keep item order; a failure
stops the Map; a resumed Map does nothing its earlier run finished."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

import pytest

from jetbridge.workflows import InvalidDefinition, TaskFailed, execute


class Gauge:
    """Counts handlers running at once, under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.calls: Counter[int] = Counter()

    def work(self, seconds: float) -> Any:
        def run(payload: Any) -> Any:
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
                self.calls[payload["n"]] += 1
            try:
                # Later items finish first, so completion order is not item order.
                time.sleep(seconds * (1 + 0.1 * (10 - payload["n"] % 10)))
                return payload["n"] * 10
            finally:
                with self.lock:
                    self.now -= 1

        return run

    def gate(self, expected: int) -> Any:
        """Handlers hold until `expected` of them run at once (then none holds any more)."""
        reached = threading.Event()

        def run(payload: Any) -> Any:
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
                self.calls[payload["n"]] += 1
                if self.now >= expected:
                    reached.set()
            try:
                reached.wait(5)
                time.sleep(0.01)  # long enough for an iteration beyond the limit to show
                return payload["n"] * 10
            finally:
                with self.lock:
                    self.now -= 1

        return run


def mapping(**fields: Any) -> dict[str, Any]:
    return {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {"n.$": "$$.Map.Item.Value"},
                "ItemProcessor": {
                    "StartAt": "Work",
                    "States": {"Work": {"Type": "Task", "Resource": "Work", "End": True}},
                },
                "End": True,
                **fields,
            }
        },
    }


def test_iterations_run_max_concurrency_at_once_and_keep_item_order() -> None:
    gauge = Gauge()
    began = time.monotonic()
    result = execute(
        mapping(MaxConcurrency=3), {"items": list(range(9))}, {"Work": gauge.work(0.1)}
    )
    elapsed = time.monotonic() - began
    assert result.status == "SUCCEEDED", result.cause
    assert result.output == [n * 10 for n in range(9)]
    assert gauge.most == 3
    # Nine items of 0.11 to 0.2 s each, three at a time: about three rounds, never nine.
    assert 0.3 < elapsed < 1.2
    kinds = Counter(e["type"] for e in result.history)
    assert kinds["MapIterationStarted"] == kinds["MapIterationSucceeded"] == 9
    indexes = sorted(
        e["mapIterationSucceededEventDetails"]["index"]
        for e in result.history
        if e["type"] == "MapIterationSucceeded"
    )
    assert indexes == list(range(9))


@pytest.mark.parametrize(("limit", "expected"), [(0, 12), (1, 1), (100, 12)])
def test_zero_is_unlimited_and_one_is_sequential(limit: int, expected: int) -> None:
    gauge = Gauge()
    result = execute(
        mapping(MaxConcurrency=limit), {"items": list(range(12))}, {"Work": gauge.gate(expected)}
    )
    assert result.output == [n * 10 for n in range(12)]
    assert gauge.most == expected


def test_unlimited_concurrency_is_capped_at_forty_as_inline_maps_are() -> None:
    gauge = Gauge()
    result = execute(mapping(), {"items": list(range(45))}, {"Work": gauge.gate(40)})
    assert result.status == "SUCCEEDED"
    assert gauge.most == 40


def test_max_concurrency_path_reads_the_state_input() -> None:
    gauge = Gauge()
    result = execute(
        mapping(MaxConcurrencyPath="$.limit"),
        {"items": list(range(6)), "limit": 2},
        {"Work": gauge.gate(2)},
    )
    assert result.output == [n * 10 for n in range(6)]
    assert gauge.most == 2


@pytest.mark.parametrize("limit", ["two", -1, 1.5, True, None])
def test_a_max_concurrency_path_to_a_non_count_fails_naming_state_and_field(limit: Any) -> None:
    result = execute(
        mapping(MaxConcurrencyPath="$.limit"), {"items": [1], "limit": limit}, {"Work": len}
    )
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "State 'M': MaxConcurrencyPath '$.limit'" in (result.cause or "")
    assert json.dumps(limit) in (result.cause or "")


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"MaxConcurrency": -1}, "States.M.MaxConcurrency: must be a non-negative integer, not -1"),
        ({"MaxConcurrency": 1.5}, "States.M.MaxConcurrency: must be a non-negative integer"),
        ({"MaxConcurrency": "2"}, "States.M.MaxConcurrency: must be a non-negative integer"),
        ({"MaxConcurrency": True}, "States.M.MaxConcurrency: must be a non-negative integer"),
        (
            {"MaxConcurrency": 2, "MaxConcurrencyPath": "$.n"},
            "States.M.MaxConcurrencyPath: cannot be combined with MaxConcurrency",
        ),
        ({"MaxConcurrencyPath": "limit"}, "States.M.MaxConcurrencyPath"),
        ({"ToleratedFailureCount": -2}, "States.M.ToleratedFailureCount"),
        ({"ToleratedFailurePercentage": 101}, "States.M.ToleratedFailurePercentage"),
    ],
)
def test_invalid_map_fields_name_state_and_field(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidDefinition) as caught:
        execute(mapping(**fields), {"items": []})
    assert fragment in str(caught.value)


def failing(bad: set[int], calls: Counter[int], seconds: float = 0.05) -> Any:
    def run(payload: Any) -> Any:
        calls[payload["n"]] += 1
        time.sleep(seconds)
        if payload["n"] in bad:
            raise TaskFailed("SeatGone", f"item {payload['n']}")
        return payload["n"]

    return run


def test_a_failed_iteration_fails_the_map_with_its_error_and_stops_the_rest() -> None:
    calls: Counter[int] = Counter()
    result = execute(
        mapping(MaxConcurrency=2), {"items": list(range(10))}, {"Work": failing({1}, calls)}
    )
    assert (result.status, result.error, result.cause) == ("FAILED", "SeatGone", "item 1")
    assert sum(calls.values()) < 10  # iterations after the failure never started
    kinds = [e["type"] for e in result.history]
    assert kinds.count("MapIterationFailed") == 1
    assert "MapStateFailed" in kinds and "MapStateSucceeded" not in kinds


def test_running_iterations_stop_at_their_next_state_and_record_it() -> None:
    reached: list[int] = []
    definition = mapping(MaxConcurrency=0)
    definition["States"]["M"]["ItemProcessor"] = {
        "StartAt": "Work",
        "States": {
            "Work": {"Type": "Task", "Resource": "Work", "Next": "After"},
            "After": {"Type": "Task", "Resource": "After", "End": True},
        },
    }

    def work(payload: Any) -> Any:
        time.sleep(0.3 if payload["n"] else 0.05)
        if payload["n"] == 0:
            raise TaskFailed("Broken", "first item")
        return payload

    handlers = {"Work": work, "After": lambda p: reached.append(p["n"])}
    result = execute(definition, {"items": [0, 1, 2]}, handlers)
    assert result.error == "Broken"
    assert reached == []
    aborted = [e for e in result.history if e["type"] == "MapIterationAborted"]
    assert sorted(e["mapIterationAbortedEventDetails"]["index"] for e in aborted) == [1, 2]


def test_a_catch_on_the_map_handles_an_iteration_failure() -> None:
    definition = mapping(
        MaxConcurrency=3,
        Catch=[{"ErrorEquals": ["SeatGone"], "ResultPath": "$.error", "Next": "Handled"}],
    )
    definition["States"]["Handled"] = {"Type": "Pass", "End": True}
    del definition["States"]["M"]["End"]
    definition["States"]["M"]["Next"] = "Handled"
    result = execute(definition, {"items": [0, 1, 2]}, {"Work": failing({2}, Counter())})
    assert result.output["error"] == {"Error": "SeatGone", "Cause": "item 2"}


@pytest.mark.parametrize(
    ("fields", "bad", "status"),
    [
        ({"ToleratedFailureCount": 1}, {3}, "SUCCEEDED"),
        ({"ToleratedFailureCount": 1}, {2, 3}, "FAILED"),
        ({"ToleratedFailurePercentage": 50}, {0, 1}, "SUCCEEDED"),
        ({"ToleratedFailurePercentage": 50}, {0, 1, 2}, "FAILED"),
        ({"ToleratedFailureCountPath": "$.tolerate"}, {1, 2}, "SUCCEEDED"),
    ],
)
def test_tolerated_failures(fields: dict[str, Any], bad: set[int], status: str) -> None:
    result = execute(
        mapping(MaxConcurrency=0, **fields),
        {"items": [0, 1, 2, 3], "tolerate": 2},
        {"Work": failing(bad, Counter())},
    )
    assert result.status == status
    if status == "SUCCEEDED":
        assert result.output == [
            {"Error": "SeatGone", "Cause": f"item {n}"} if n in bad else n for n in range(4)
        ]
    else:
        assert result.error == "States.ExceedToleratedFailureThreshold"


class Crash(BaseException):
    """Stands for the process dying."""


def test_a_resumed_map_runs_no_finished_iteration_again() -> None:
    """Interrupt a concurrent Map, resume from what was recorded: only unfinished work runs."""
    recorded: list[dict[str, Any]] = []
    first: Counter[int] = Counter()

    def crashing(payload: Any) -> Any:
        first[payload["n"]] += 1
        time.sleep(0.02 * (payload["n"] % 3))
        if payload["n"] == 5:
            raise Crash
        return payload["n"]

    with pytest.raises(Crash):
        execute(
            mapping(MaxConcurrency=3),
            {"items": list(range(9))},
            {"Work": crashing},
            on_event=recorded.append,
            name="resumed",
        )
    finished = {
        json.loads(e["taskSucceededEventDetails"]["output"])
        for e in recorded
        if e["type"] == "TaskSucceeded"
    }
    assert finished and 5 not in finished
    again: Counter[int] = Counter()
    result = execute(
        mapping(MaxConcurrency=3),
        {"items": list(range(9))},
        {"Work": lambda p: again.update([p["n"]]) or p["n"]},
        previous=recorded,
        name="resumed",
    )
    assert result.status == "SUCCEEDED", result.cause
    assert result.output == list(range(9))
    assert not finished & set(again), "a finished iteration ran again"
    assert set(again) | finished == set(range(9))
    history = result.history
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    assert Counter(e["type"] for e in history)["MapIterationStarted"] == 9
    # Replaying the whole history once more does nothing at all.
    again.clear()
    idle = execute(
        mapping(MaxConcurrency=3),
        {"items": list(range(9))},
        {"Work": lambda p: again.update([p["n"]]) or p["n"]},
        previous=history,
        name="resumed",
    )
    assert again == Counter()
    assert (idle.status, idle.output, len(idle.history)) == (
        "SUCCEEDED",
        list(range(9)),
        len(history),
    )


def test_a_failure_recorded_before_a_crash_is_not_outrun_on_resume() -> None:
    """The earlier run recorded a failure; the resumed Map fails with it and starts nothing."""
    recorded: list[dict[str, Any]] = []
    calls: Counter[int] = Counter()
    definition = mapping(MaxConcurrency=1)

    def work(payload: Any) -> Any:
        calls[payload["n"]] += 1
        if payload["n"] == 1:
            raise TaskFailed("Broken", "item 1")
        return payload["n"]

    def crash_after_failure(event: dict[str, Any]) -> None:
        recorded.append(event)
        if event["type"] == "MapIterationFailed":
            raise Crash

    with pytest.raises(Crash):
        execute(definition, {"items": [0, 1, 2]}, {"Work": work}, on_event=crash_after_failure)
    calls.clear()
    result = execute(definition, {"items": [0, 1, 2]}, {"Work": work}, previous=recorded)
    assert (result.status, result.error) == ("FAILED", "Broken")
    assert calls == Counter()


def test_nested_maps_keep_their_own_order() -> None:
    definition = {
        "StartAt": "Outer",
        "States": {
            "Outer": {
                "Type": "Map",
                "MaxConcurrency": 2,
                "ItemProcessor": {
                    "StartAt": "Inner",
                    "States": {
                        "Inner": {
                            "Type": "Map",
                            "MaxConcurrency": 3,
                            "ItemProcessor": {
                                "StartAt": "Work",
                                "States": {"Work": {"Type": "Task", "Resource": "W", "End": True}},
                            },
                            "End": True,
                        }
                    },
                },
                "End": True,
            }
        },
    }

    def slow(n: int) -> int:
        time.sleep(0.01 * (5 - n % 5))
        return n * 2

    data = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]
    result = execute(definition, data, {"W": slow})
    assert result.output == [[n * 2 for n in row] for row in data]
    recorded = result.history
    again = execute(definition, data, {"W": lambda n: pytest.fail("ran again")}, previous=recorded)
    assert again.output == result.output and len(again.history) == len(recorded)


def test_replaying_a_failed_map_with_aborted_iterations_does_nothing_again() -> None:
    definition = mapping(MaxConcurrency=0)
    definition["States"]["M"]["ItemProcessor"] = {
        "StartAt": "Work",
        "States": {
            "Work": {"Type": "Task", "Resource": "Work", "Next": "Rest"},
            "Rest": {"Type": "Wait", "SecondsPath": "$.rest", "Next": "After"},
            "After": {"Type": "Task", "Resource": "After", "End": True},
        },
    }
    calls: list[str] = []

    def work(payload: Any) -> Any:
        calls.append(f"work {payload['n']}")
        if payload["n"] == 0:
            time.sleep(0.3)
            raise TaskFailed("Broken", "first item")
        return {"rest": 5 if payload["n"] == 1 else 0}

    handlers = {"Work": work, "After": lambda p: calls.append("after")}
    began = time.monotonic()
    first = execute(definition, {"items": [0, 1]}, handlers)
    assert (first.status, first.error) == ("FAILED", "Broken")
    assert time.monotonic() - began < 2  # the 5-second Wait was cut short
    assert "after" not in calls
    aborted = [e for e in first.history if e["type"] == "MapIterationAborted"]
    assert [e["mapIterationAbortedEventDetails"]["index"] for e in aborted] == [1]
    calls.clear()
    again = execute(definition, {"items": [0, 1]}, handlers, previous=first.history)
    assert (again.status, again.error, calls) == ("FAILED", "Broken", [])
    assert len(again.history) == len(first.history)


def test_histories_linked_one_event_after_another_still_resume() -> None:
    """Earlier versions linked every event to the one just before it; such histories resume."""
    calls: Counter[int] = Counter()
    definition = mapping(MaxConcurrency=1)
    definition["States"]["M"]["End"] = False
    definition["States"]["M"]["Next"] = "Last"
    definition["States"]["Last"] = {"Type": "Task", "Resource": "Last", "End": True}
    handlers = {
        "Work": lambda p: calls.update([p["n"]]) or p["n"],
        "Last": lambda p: calls.update([99]) or p,
    }
    first = execute(definition, {"items": [0, 1, 2]}, handlers)
    legacy = [dict(e, previousEventId=e["id"] - 1) for e in first.history]
    cut = next(i for i, e in enumerate(legacy) if e["type"] == "MapStateSucceeded")
    calls.clear()
    resumed = execute(definition, {"items": [0, 1, 2]}, handlers, previous=legacy[: cut + 1])
    assert resumed.output == [0, 1, 2]
    assert calls == Counter({99: 1})  # only the state after the Map ran


def test_a_resumed_run_that_diverges_from_its_history_fails_clearly() -> None:
    waiting = {"StartAt": "A", "States": {"A": {"Type": "Wait", "Seconds": 0, "End": True}}}
    first = execute(waiting, {})
    passing = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
    resumed = execute(passing, {}, previous=first.history[:2])
    assert (resumed.status, resumed.error) == ("FAILED", "States.Runtime")
    assert "diverged" in (resumed.cause or "")
    assert resumed.history[-1]["type"] == "ExecutionFailed"
