"""Lines of execution side by side: the iterations of a Map and the branches of a Parallel.

Each line runs in a scope of its own, at most `concurrency` at once. Once the lines that ended
fail the whole (any failure, or more than a Map tolerates), no further line starts and the
running ones stop at their next step. A resumed fan-out first replays, one by one and without
doing anything, the lines its earlier run started; only then does new work begin, so a failure
recorded before is seen before any line the earlier run never started could start.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Any

from jetbridge.workflows.asl.errors import StatesError
from jetbridge.workflows.asl.scope import Frontier, Halted, Scope, Suspended


@dataclass
class Ended:
    """How one line ended."""

    index: int
    output: Any = None
    error: StatesError | None = None
    failed_event: int = 0  # id of the event that recorded its failure: which failure came first
    aborted: bool = False


class FanOut(ABC):
    """Runs lines `0 .. count - 1` of the state `name`, whose Started event was the last one
    recorded in `scope`; subclasses say how a line runs and when the lines fail the whole."""

    def __init__(self, name: str, scope: Scope, count: int) -> None:
        self.name = name
        self.scope = scope
        self.runtime = scope.runtime
        self.count = count
        # Where the Started event stands in the state's scope: the lines' scopes hang there.
        self.seq = scope.count - 1
        self.concurrency = 1
        self.abort = threading.Event()
        self.ended: dict[int, Ended] = {}
        self.fatal: BaseException | None = None
        self.queue: deque[int] = deque()
        self.resumed: set[int] = set()
        self.running: dict[concurrent.futures.Future[Ended], int] = {}
        self.waiting: dict[int, Suspended] = {}

    @abstractmethod
    def iterate(self, index: int, replay_only: bool = False) -> Ended:
        """Run line `index` in its own scope (`self.scope.child(self.seq, index, ...)`)."""

    def failing(self) -> bool:
        """Whether the lines ended so far fail the whole: by default, any failure does."""
        return any(ended.error is not None for ended in self.ended.values())

    def first_failure(self) -> StatesError:
        failed = [ended for ended in self.ended.values() if ended.error is not None]
        first = min(failed, key=lambda ended: ended.failed_event)
        assert first.error is not None
        return first.error

    def stopped_from_outside(self) -> bool:
        """A line was aborted although none of these failed: an enclosing fan-out stops."""
        return any(ended.aborted for ended in self.ended.values()) and not self.abort.is_set()

    def run(self, concurrency: int) -> None:
        """Run (or resume) every line; then `ended` tells how each one that ran ended."""
        self.concurrency = max(1, concurrency)
        started = [
            index
            for index in range(self.count)
            if ((*self.scope.path, self.seq, index), 0) in self.runtime.known
        ]
        resumed = self._replay(started)
        unstarted = [index for index in range(self.count) if index not in set(started)]
        if self.scope.replay_only and (resumed or unstarted):
            raise Frontier
        self._spread(resumed, unstarted)

    def _replay(self, started: list[int]) -> list[int]:
        """Replay what the earlier run recorded; the lines it left unfinished come back."""
        resumed = []
        for index in started:
            try:
                self._ended(self.iterate(index, replay_only=True))
            except Frontier:
                resumed.append(index)
        return resumed

    def _ended(self, ended: Ended) -> None:
        self.ended[ended.index] = ended
        if self.failing():
            self.abort.set()

    def _spread(self, resumed: list[int], unstarted: list[int]) -> None:
        """Run lines, at most `concurrency` at once (waiting ones keep their place)."""
        self.queue = deque(resumed + unstarted)
        self.resumed = set(resumed)
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.concurrency, thread_name_prefix=f"asl-{self.name[:20]}"
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
            # Once the whole fails, only lines already under way go on, to record their abort.
            if index in self.resumed or not self.abort.is_set():
                self.running[pool.submit(self.iterate, index)] = index

    def _wake(self, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        """Run again the waiting lines that can go on (or must record their abort)."""
        for index, pause in list(self.waiting.items()):
            if self.runtime.halted.is_set():
                return
            if self.abort.is_set() or self._ready(pause):
                del self.waiting[index]
                self.running[pool.submit(self.iterate, index)] = index

    def _collect(self, future: concurrent.futures.Future[Ended], index: int) -> None:
        try:
            self._ended(future.result())
        except Suspended as pause:
            self.waiting[index] = pause
        except Halted:
            pass  # another line stopped the execution; its reason is raised instead
        except BaseException as exc:
            self._stop(exc)

    def _stop(self, exc: BaseException) -> None:
        if self.fatal is None:
            self.fatal = exc
        self.runtime.halted.set()

    def _ready(self, pause: Suspended) -> bool:
        """Whether a waiting line can go on: an answer came, or a deadline passed."""
        tokens = self.runtime.tokens
        if time.time() >= pause.wake_at:
            return True
        return tokens is not None and any(
            not isinstance(tokens.poll(t), float) for t in pause.tokens
        )
