"""Parallel states: the branches run at once, each in a line of execution of its own, and the
output lists their outputs in branch order.

A failed branch fails the Parallel with its error (the first to fail, if several do) and stops
the others at their next step; `fanout` runs and resumes the branches. A history written by
earlier versions, which ran the branches one after another in the Parallel's own scope, resumes
the way it was written.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from jetbridge.workflows.asl.errors import StatesError
from jetbridge.workflows.asl.fanout import Ended, FanOut
from jetbridge.workflows.asl.scope import BRANCH, IterationAborted, Scope

RunMachine = Callable[[dict[str, Any], Any, dict[str, Any], Scope], Any]
ENDS = {"ParallelStateSucceeded", "ParallelStateFailed", "ParallelStateAborted"}


def run_parallel(
    name: str,
    branches: list[dict[str, Any]],
    payload: Any,
    context: dict[str, Any],
    scope: Scope,
    run_machine: RunMachine,
) -> list[Any]:
    scope.event("ParallelStateStarted")
    if _recorded_in_sequence(scope):
        outputs = [run_machine(branch, payload, dict(context), scope) for branch in branches]
        scope.event("ParallelStateSucceeded")
        return outputs
    run = _Branches(name, branches, payload, context, scope, run_machine)
    run.run(len(branches))
    return run.conclude()


def _recorded_in_sequence(scope: Scope) -> bool:
    """Whether an earlier version recorded these branches one after another in this scope:
    then the first branch's events, not the Parallel's end, follow ParallelStateStarted."""
    recorded = scope.peek()
    return recorded is not None and recorded["type"] not in ENDS


class _Branches(FanOut):
    def __init__(
        self,
        name: str,
        branches: list[dict[str, Any]],
        payload: Any,
        context: dict[str, Any],
        scope: Scope,
        run_machine: RunMachine,
    ) -> None:
        super().__init__(name, scope, len(branches))
        self.branches = branches
        self.payload = payload
        self.context = context
        self.run_machine = run_machine

    def iterate(self, index: int, replay_only: bool = False) -> Ended:
        # Step Functions marks no branch's start; the branch's first event names its place.
        opening = {BRANCH: {"name": self.name, "index": index}}
        scope = self.scope.child(self.seq, index, self.abort, replay_only, opening)
        data = copy.deepcopy(self.payload)  # a copy each: branches run side by side
        try:
            output = self.run_machine(self.branches[index], data, dict(self.context), scope)
        except StatesError as error:
            return Ended(index, error=error, failed_event=scope.last)
        except IterationAborted:
            return Ended(index, aborted=True)
        return Ended(index, output=output)

    def conclude(self) -> list[Any]:
        if self.stopped_from_outside():
            self.scope.event("ParallelStateAborted")
            raise IterationAborted
        if self.failing():
            self.scope.event("ParallelStateFailed")
            raise self.first_failure()
        self.scope.event("ParallelStateSucceeded")
        return [self.ended[index].output for index in range(self.count)]
