"""TimeoutSeconds and HeartbeatSeconds of Task states, in process: validation, heartbeats from
handlers, and the errors as Step Functions names them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from jetbridge.workflows import InvalidDefinition, execute, heartbeat


def task(**fields: Any) -> dict[str, Any]:
    return {
        "StartAt": "A",
        "States": {"A": {"Type": "Task", "Resource": "Work", "End": True, **fields}},
    }


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Lets handlers abandoned by a timeout finish when the test ends."""
    event = threading.Event()
    yield event
    event.set()


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        (
            {"TimeoutSeconds": 10, "HeartbeatSeconds": 10},
            "States.A.HeartbeatSeconds: must be smaller than TimeoutSeconds (10)",
        ),
        ({"TimeoutSeconds": 5, "HeartbeatSeconds": 9}, "States.A.HeartbeatSeconds"),
        ({"HeartbeatSeconds": 0}, "States.A.HeartbeatSeconds: must be a positive integer"),
        ({"HeartbeatSeconds": 1.5}, "States.A.HeartbeatSeconds: must be a positive integer"),
        ({"HeartbeatSeconds": "3"}, "States.A.HeartbeatSeconds: must be a positive integer"),
        ({"TimeoutSeconds": 0.2}, "States.A.TimeoutSeconds: must be a positive integer"),
        ({"TimeoutSeconds": -1}, "States.A.TimeoutSeconds"),
        ({"TimeoutSeconds": 100_000_000}, "States.A.TimeoutSeconds"),
        (
            {"HeartbeatSeconds": 3, "HeartbeatSecondsPath": "$.h"},
            "States.A.HeartbeatSecondsPath: cannot be combined with HeartbeatSeconds",
        ),
        (
            {"TimeoutSeconds": 3, "TimeoutSecondsPath": "$.t"},
            "States.A.TimeoutSecondsPath: cannot be combined with TimeoutSeconds",
        ),
        ({"HeartbeatSecondsPath": "h"}, "States.A.HeartbeatSecondsPath"),
    ],
)
def test_invalid_timeouts_name_state_and_field(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidDefinition) as caught:
        execute(task(**fields), {})
    assert fragment in str(caught.value)


def test_a_handler_that_sends_heartbeats_may_run_longer_than_heartbeat_seconds() -> None:
    def work(payload: Any) -> str:
        for _ in range(8):
            time.sleep(0.2)
            heartbeat()
        return "done"

    result = execute(task(TimeoutSeconds=10, HeartbeatSeconds=1), {}, {"Work": work})
    assert (result.status, result.output) == ("SUCCEEDED", "done")
    scheduled = next(e for e in result.history if e["type"] == "TaskScheduled")
    details = scheduled["taskScheduledEventDetails"]
    assert (details["timeoutInSeconds"], details["heartbeatInSeconds"]) == (10, 1)


def test_a_silent_handler_fails_with_heartbeat_timeout(release: threading.Event) -> None:
    began = time.monotonic()
    result = execute(task(HeartbeatSeconds=1), {}, {"Work": lambda p: release.wait(10)})
    assert (result.status, result.error) == ("FAILED", "States.HeartbeatTimeout")
    assert 0.9 < time.monotonic() - began < 3
    timed_out = next(e for e in result.history if e["type"] == "TaskTimedOut")
    assert timed_out["taskTimedOutEventDetails"]["error"] == "States.HeartbeatTimeout"


def test_heartbeats_do_not_extend_timeout_seconds(release: threading.Event) -> None:
    def busy(payload: Any) -> None:
        while not release.wait(0.2):
            heartbeat()

    result = execute(task(TimeoutSeconds=2, HeartbeatSeconds=1), {}, {"Work": busy})
    assert result.error == "States.Timeout"


def test_heartbeat_timeouts_are_retried_and_caught_as_aws_does(release: threading.Event) -> None:
    attempts: list[int] = []

    def flaky(payload: Any) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            release.wait(10)  # silent: times out
        return "second try"

    retried = execute(
        task(
            HeartbeatSeconds=1,
            Retry=[{"ErrorEquals": ["States.HeartbeatTimeout"], "IntervalSeconds": 0}],
        ),
        {},
        {"Work": flaky},
    )
    assert (retried.output, len(attempts)) == ("second try", 2)


def test_task_failed_does_not_catch_a_heartbeat_timeout(release: threading.Event) -> None:
    definition = task(
        HeartbeatSeconds=1, Catch=[{"ErrorEquals": ["States.TaskFailed"], "Next": "Handled"}]
    )
    definition["States"]["Handled"] = {"Type": "Pass", "End": True}
    result = execute(definition, {}, {"Work": lambda p: release.wait(10)})
    assert (result.status, result.error) == ("FAILED", "States.HeartbeatTimeout")


def test_catch_all_covers_heartbeat_timeout(release: threading.Event) -> None:
    definition = task(
        HeartbeatSeconds=1,
        Catch=[
            {"ErrorEquals": ["States.TaskFailed"], "Next": "Failed"},
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.why", "Next": "Failed"},
        ],
    )
    definition["States"]["Failed"] = {"Type": "Pass", "End": True}
    result = execute(definition, {"k": 1}, {"Work": lambda p: release.wait(10)})
    assert result.output["why"]["Error"] == "States.HeartbeatTimeout"


@pytest.mark.parametrize(
    ("fields", "data", "fragment"),
    [
        ({"TimeoutSecondsPath": "$.t"}, {"t": "soon"}, "State 'A': TimeoutSecondsPath '$.t'"),
        ({"TimeoutSecondsPath": "$.t"}, {"t": 0}, "State 'A': TimeoutSecondsPath '$.t'"),
        ({"HeartbeatSecondsPath": "$.h"}, {"h": 2.5}, "State 'A': HeartbeatSecondsPath '$.h'"),
    ],
)
def test_timeout_paths_to_bad_values_fail_naming_state_and_field(
    fields: dict[str, Any], data: dict[str, Any], fragment: str
) -> None:
    result = execute(task(**fields), data, {"Work": lambda p: "never"})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert fragment in (result.cause or "")


def test_timeout_seconds_path_applies(release: threading.Event) -> None:
    result = execute(task(TimeoutSecondsPath="$.t"), {"t": 1}, {"Work": lambda p: release.wait(10)})
    assert result.error == "States.Timeout"


def test_a_handler_raising_timeout_error_is_a_task_failure_not_a_timeout() -> None:
    def raises(payload: Any) -> None:
        raise TimeoutError("upstream took too long")

    result = execute(task(TimeoutSeconds=5), {}, {"Work": raises})
    assert result.error == "TimeoutError"
