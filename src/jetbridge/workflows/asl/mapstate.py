"""Map states: iterations run concurrently up to MaxConcurrency, results keep the items' order.

A failed iteration fails the Map (unless ToleratedFailureCount/Percentage allow it) and stops
the others at their next step. A resumed Map first replays, one by one and without doing
anything, the iterations its earlier run started; only then does new work begin, so a failure
recorded before is seen before any iteration the earlier run never started could start.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jetbridge.workflows.asl import paths
from jetbridge.workflows.asl.errors import StatesError
from jetbridge.workflows.asl.scope import (
    Frontier,
    Halted,
    IterationAborted,
    Scope,
    Suspended,
)

# Step Functions runs at most 40 iterations of an inline Map at once.
INLINE_CONCURRENCY = 40
RunMachine = Callable[[dict[str, Any], Any, dict[str, Any], Scope], Any]
Build = Callable[[Any, Any, Any], Any]


@dataclass
class _Ended:
    """How one iteration ended."""

    index: int
    output: Any = None
    error: StatesError | None = None
    failed_event: int = 0  # id of its MapIterationFailed event: which failure came first
    aborted: bool = False


@dataclass
class _Tolerance:
    count: int | None = None
    percentage: float | None = None

    @property
    def configured(self) -> bool:
        return self.count is not None or self.percentage is not None

    def exceeded(self, failures: int, total: int) -> bool:
        if not self.configured:
            return failures > 0
        over_count = self.count is not None and failures > self.count
        over_share = self.percentage is not None and failures * 100 > self.percentage * total
        return over_count or over_share


def run_map(
    name: str,
    state: dict[str, Any],
    effective: Any,
    context: dict[str, Any],
    scope: Scope,
    run_machine: RunMachine,
    build: Build,
) -> list[Any]:
    items = paths.read(effective, state.get("ItemsPath", "$"), context)
    if not isinstance(items, list):
        raise StatesError(
            "States.Runtime",
            f"State '{name}': ItemsPath '{state.get('ItemsPath', '$')}' must select an array",
        )
    concurrency = max_concurrency(name, state, effective, context)
    tolerance = _tolerance(name, state, effective, context)
    scope.event("MapStateStarted", mapStateStartedEventDetails={"length": len(items)})
    fan_out = _FanOut(name, state, effective, context, scope, items, run_machine, build)
    return fan_out.run(max(1, min(concurrency, len(items))), tolerance)


def max_concurrency(name: str, state: dict[str, Any], effective: Any, context: Any) -> int:
    """How many iterations may run at once: MaxConcurrency(Path), 0 meaning as many as allowed."""
    value = state.get("MaxConcurrency", 0)
    if "MaxConcurrencyPath" in state:
        value = paths.read(effective, state["MaxConcurrencyPath"], context)
        if not _count(value):
            raise StatesError(
                "States.Runtime",
                f"State '{name}': MaxConcurrencyPath '{state['MaxConcurrencyPath']}' selected "
                f"{json.dumps(value)}; expected a non-negative integer",
            )
    return INLINE_CONCURRENCY if value == 0 else min(int(value), INLINE_CONCURRENCY)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _percentage(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 100


def _tolerance(name: str, state: dict[str, Any], effective: Any, context: Any) -> _Tolerance:
    found: dict[str, Any] = {}
    for field, valid, expected in (
        ("ToleratedFailureCount", _count, "a non-negative integer"),
        ("ToleratedFailurePercentage", _percentage, "a number from 0 to 100"),
    ):
        if f"{field}Path" in state:
            value = paths.read(effective, state[f"{field}Path"], context)
            if not valid(value):
                raise StatesError(
                    "States.Runtime",
                    f"State '{name}': {field}Path '{state[f'{field}Path']}' selected "
                    f"{json.dumps(value)}; expected {expected}",
                )
            found[field] = value
        elif field in state:
            found[field] = state[field]
    return _Tolerance(found.get("ToleratedFailureCount"), found.get("ToleratedFailurePercentage"))


class _FanOut:
    def __init__(
        self,
        name: str,
        state: dict[str, Any],
        effective: Any,
        context: dict[str, Any],
        scope: Scope,
        items: list[Any],
        run_machine: RunMachine,
        build: Build,
    ) -> None:
        self.name = name
        self.processor: dict[str, Any] = state.get("ItemProcessor") or state["Iterator"]
        self.selector = state.get("ItemSelector", state.get("Parameters"))
        self.effective = effective
        self.context = context
        self.scope = scope
        self.runtime = scope.runtime
        self.items = items
        self.run_machine = run_machine
        self.build = build
        # Where MapStateStarted stands in the Map's scope: the iterations' scopes hang there.
        self.seq = scope.count - 1
        self.concurrency = 1
        self.tolerance = _Tolerance()
        self.abort = threading.Event()
        self.ended: dict[int, _Ended] = {}
        self.fatal: BaseException | None = None
        self.queue: deque[int] = deque()
        self.resumed: set[int] = set()
        self.running: dict[concurrent.futures.Future[_Ended], int] = {}
        self.waiting: dict[int, Suspended] = {}

    def run(self, concurrency: int, tolerance: _Tolerance) -> list[Any]:
        self.concurrency = concurrency
        self.tolerance = tolerance
        started = [
            index
            for index in range(len(self.items))
            if ((*self.scope.path, self.seq, index), 0) in self.runtime.known
        ]
        resumed = self._replay(started)
        unstarted = [index for index in range(len(self.items)) if index not in set(started)]
        if self.scope.replay_only and (resumed or unstarted):
            raise Frontier
        self._spread(resumed, unstarted)
        return self._conclude()

    def _iterate(self, index: int, replay_only: bool = False) -> _Ended:
        scope = self.scope.child(self.seq, index, self.abort, replay_only)
        item = self.items[index]
        context = {**self.context, "Map": {"Item": {"Index": index, "Value": item}}}
        details = {"name": self.name, "index": index}
        scope.event("MapIterationStarted", mapIterationStartedEventDetails=details)
        try:
            selected = self.selector is not None
            data = self.build(self.selector, self.effective, context) if selected else item
            output = self.run_machine(self.processor, data, context, scope)
        except StatesError as error:
            failed = scope.event("MapIterationFailed", mapIterationFailedEventDetails=details)
            return _Ended(index, error=error, failed_event=int(failed["id"]))
        except IterationAborted:
            scope.event("MapIterationAborted", mapIterationAbortedEventDetails=details)
            return _Ended(index, aborted=True)
        scope.event("MapIterationSucceeded", mapIterationSucceededEventDetails=details)
        return _Ended(index, output=output)

    def _replay(self, started: list[int]) -> list[int]:
        """Replay what the earlier run recorded; the iterations it left unfinished come back."""
        resumed = []
        for index in started:
            try:
                self._ended(self._iterate(index, replay_only=True))
            except Frontier:
                resumed.append(index)
        return resumed

    def _ended(self, ended: _Ended) -> None:
        self.ended[ended.index] = ended
        failures = sum(1 for e in self.ended.values() if e.error is not None)
        if self.tolerance.exceeded(failures, len(self.items)):
            self.abort.set()

    def _spread(self, resumed: list[int], unstarted: list[int]) -> None:
        """Run iterations, at most `concurrency` at once (waiting ones keep their place)."""
        self.queue = deque(resumed + unstarted)
        self.resumed = set(resumed)
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.concurrency, thread_name_prefix=f"asl-map-{self.name[:20]}"
        )
        try:
            while True:
                self._fill(pool)
                if not self.running:
                    break
                done, _ = concurrent.futures.wait(
                    self.running,
                    timeout=self.runtime.poll_interval if self.waiting else None,
                    return_when=concurrent.futures.FIRST_COMPLETED,
                )
                for future in done:
                    self._collect(future, self.running.pop(future))
                self._wake(pool)
        except BaseException as exc:
            self._stop(exc)
        finally:
            pool.shutdown(wait=True)
        if self.fatal is not None:
            raise self.fatal
        if self.waiting:
            pauses = self.waiting.values()
            tokens = [token for pause in pauses for token in pause.tokens]
            raise Suspended(tokens, min(pause.wake_at for pause in pauses))

    def _fill(self, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        while self.queue and len(self.running) + len(self.waiting) < self.concurrency:
            index = self.queue.popleft()
            if self.runtime.halted.is_set():
                continue
            # Once the Map fails, only iterations already under way go on, to record their abort.
            if index in self.resumed or not self.abort.is_set():
                self.running[pool.submit(self._iterate, index)] = index

    def _wake(self, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        """Run again the waiting iterations that can go on (or must record their abort)."""
        for index, pause in list(self.waiting.items()):
            if self.runtime.halted.is_set():
                return
            if self.abort.is_set() or self._ready(pause):
                del self.waiting[index]
                self.running[pool.submit(self._iterate, index)] = index

    def _collect(self, future: concurrent.futures.Future[_Ended], index: int) -> None:
        try:
            self._ended(future.result())
        except Suspended as pause:
            self.waiting[index] = pause
        except Halted:
            pass  # another iteration stopped the execution; its reason is raised instead
        except BaseException as exc:
            self._stop(exc)

    def _stop(self, exc: BaseException) -> None:
        if self.fatal is None:
            self.fatal = exc
        self.runtime.halted.set()

    def _ready(self, pause: Suspended) -> bool:
        """Whether a waiting iteration can go on: an answer came, or a deadline passed."""
        tokens = self.runtime.tokens
        if time.time() >= pause.wake_at:
            return True
        return tokens is not None and any(
            not isinstance(tokens.poll(t), float) for t in pause.tokens
        )

    def _conclude(self) -> list[Any]:
        ended = [self.ended[index] for index in sorted(self.ended)]
        failed = [e for e in ended if e.error is not None]
        if any(e.aborted for e in ended) and not self.abort.is_set():
            self.scope.event("MapStateAborted")  # an enclosing Map stopped this one
            raise IterationAborted
        if self.tolerance.exceeded(len(failed), len(self.items)):
            self.scope.event("MapStateFailed")
            if self.tolerance.configured:
                raise StatesError(
                    "States.ExceedToleratedFailureThreshold",
                    f"State '{self.name}': {len(failed)} of {len(self.items)} iterations failed",
                )
            first = min(failed, key=lambda e: e.failed_event)
            assert first.error is not None
            raise first.error
        self.scope.event("MapStateSucceeded")
        return [_output(self.ended[index]) for index in range(len(self.items))]


def _output(ended: _Ended) -> Any:
    if ended.error is None:
        return ended.output
    return {"Error": ended.error.error, "Cause": ended.error.cause}
