"""Python targets used by the tests, registered by name as a program embedding jetbridge does:
in-process apps get `HANDLERS` (`create_app(..., handlers=HANDLERS)`); processes started with
`JETBRIDGE_HANDLER_PLUGINS=support.handlers` call `register_handlers`."""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jetbridge.events.handlers import Handler, HandlerRegistry

RECEIVED: dict[str, list[Any]] = defaultdict(list)
FAILURES: dict[str, int] = defaultdict(int)
_lock = threading.Lock()


def reset() -> None:
    with _lock:
        RECEIVED.clear()
        FAILURES.clear()


def record(payload: Any) -> None:
    with _lock:
        RECEIVED["record"].append(payload)


def record_other(payload: Any) -> None:
    with _lock:
        RECEIVED["other"].append(payload)


def flaky(payload: Any, context: Any) -> None:
    """Fails the first two attempts of every event, then records it."""
    with _lock:
        FAILURES[context.event_id] += 1
        if FAILURES[context.event_id] <= 2:
            raise RuntimeError(f"transient failure {FAILURES[context.event_id]}")
        RECEIVED["flaky"].append((context.attempt, payload))


def always_fails(payload: Any) -> None:
    raise RuntimeError("downstream system is unavailable")


def slow_first_in_lane(payload: Any) -> None:
    """Slow on events flagged 'slow' so a later event of the same lane would overtake it."""
    if payload.get("detail", {}).get("slow"):
        time.sleep(0.3)
    with _lock:
        RECEIVED["ordered"].append(payload["detail"]["n"])


def append_to_sink(payload: Any) -> None:
    """For the crash test: append the event id to the file named by JETBRIDGE_TEST_SINK."""
    time.sleep(0.005)
    with open(os.environ["JETBRIDGE_TEST_SINK"], "a", encoding="utf-8") as sink:
        sink.write(payload["id"] + "\n")


_calls = 0


def counted_step(payload: Any) -> int:
    """A workflow Task's effect: appends "<execution> <step>" to the sink file before it
    returns the step, so the calls of a worker killed mid-run are still counted. With
    JETBRIDGE_TEST_HOLD_AFTER=N the process's calls after the N-th never return (nor write):
    a worker to be killed cannot finish its work before the kill, however slowly the test
    watching it is scheduled."""
    global _calls
    hold_after = os.environ.get("JETBRIDGE_TEST_HOLD_AFTER")
    if hold_after is not None:
        with _lock:
            _calls += 1
            held = _calls > int(hold_after)
        if held:
            time.sleep(3600)
    time.sleep(0.01)
    with open(os.environ["JETBRIDGE_TEST_SINK"], "a", encoding="utf-8") as sink:
        sink.write(f"{payload['execution']} {payload['step']}\n")
    return int(payload["step"])


def stuck(payload: Any) -> None:
    """Says it started (in the sink file), then does not return for minutes: work on a thread
    that no shutdown can interrupt."""
    with open(os.environ["JETBRIDGE_TEST_SINK"], "a", encoding="utf-8") as sink:
        sink.write(payload["id"] + "\n")
    time.sleep(300)


HANDLERS: dict[str, Handler] = {
    "record": record,
    "record-other": record_other,
    "flaky": flaky,
    "always-fails": always_fails,
    "slow-first-in-lane": slow_first_in_lane,
    "append-to-sink": append_to_sink,
    "stuck": stuck,
    "counted-step": counted_step,
}


def register_handlers(registry: HandlerRegistry) -> None:
    """The plugin hook: `JETBRIDGE_HANDLER_PLUGINS=support.handlers`."""
    for name, handler in HANDLERS.items():
        registry.register(name, handler)
