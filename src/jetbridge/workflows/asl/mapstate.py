"""Map states: iterations run concurrently up to MaxConcurrency, results keep the items' order.

A failed iteration fails the Map (unless ToleratedFailureCount/Percentage allow it) and stops
the others at their next step; `fanout` runs and resumes the iterations.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jetbridge.workflows.asl import distributed_map, jsonata_states, paths
from jetbridge.workflows.asl.distributed_state import (
    DISTRIBUTED_CONCURRENCY,
    is_distributed,
    run_distributed,
)
from jetbridge.workflows.asl.errors import StatesError
from jetbridge.workflows.asl.fanout import Ended, FanOut
from jetbridge.workflows.asl.jsonata_states import ITEMS
from jetbridge.workflows.asl.scope import IterationAborted, Runtime, Scope

# Step Functions runs at most 40 iterations of an inline Map at once.
INLINE_CONCURRENCY = 40
RunMachine = Callable[[dict[str, Any], Any, dict[str, Any], Scope], Any]
NewContext = Callable[[str, Any, str, Runtime], dict[str, Any]]
Build = Callable[[Any, Any, Any], Any]


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
    new_context: NewContext,
) -> Any:
    if is_distributed(state):
        return _distributed(name, state, effective, context, scope, run_machine, build, new_context)
    items, _ = _items(name, state, effective, context, scope, build)
    concurrency = max_concurrency(name, state, effective, context)
    tolerance = _tolerance(name, state, effective, context)
    scope.event("MapStateStarted", mapStateStartedEventDetails={"length": len(items)})
    iterations = _Iterations(name, state, effective, context, scope, items, run_machine, build)
    iterations.tolerance = tolerance
    iterations.run(min(concurrency, len(items)))
    return iterations.conclude()


def _distributed(
    name: str,
    state: dict[str, Any],
    effective: Any,
    context: dict[str, Any],
    scope: Scope,
    run_machine: RunMachine,
    build: Build,
    new_context: NewContext,
) -> Any:
    """A Distributed Map: a Map Run of child executions (`distributed_state`)."""
    tolerance = _tolerance(name, state, effective, context)
    settings = {
        "max_concurrency": _distributed_concurrency(name, state, effective, context),
        "tolerated_count": tolerance.count,
        "tolerated_percentage": tolerance.percentage,
    }

    def items() -> tuple[list[Any], list[str] | None]:
        return _items(name, state, effective, context, scope, build)

    outputs, records, arn = run_distributed(
        name, state, effective, context, scope, items, settings, run_machine, new_context, build
    )
    if "ResultWriter" not in state:
        return outputs
    writer = state["ResultWriter"]
    if "Resource" not in writer:  # WriterConfig alone: the output shaped, nothing written
        return distributed_map.transform(records, distributed_map.writer_settings(writer)[0])
    return distributed_map.write_results(
        name,
        state["ResultWriter"],
        records,
        effective,
        context,
        scope.runtime.object_store,
        _shape(state, build),
        arn,
    )


def _items(
    name: str, state: dict[str, Any], effective: Any, context: Any, scope: Scope, build: Build
) -> tuple[list[Any], list[str] | None]:
    """The Map's items, and the object keys of items that an object listing gave."""
    # A JSONata Map's items were evaluated from its Items before (jsonata_states.ITEMS).
    items = state.get(ITEMS)
    keys = None
    if items is None and "ItemReader" in state:
        runtime = scope.runtime
        shape = _shape(state, build)
        items, keys = distributed_map.read_items(
            name,
            state["ItemReader"],
            effective,
            context,
            distributed_map.Sources(runtime.object_store, runtime.read_url),
            shape,
        )
    if items is None:
        items = paths.read(effective, state.get("ItemsPath", "$"), context)
    if not isinstance(items, list):
        raise StatesError(
            "States.Runtime",
            f"State '{name}': ItemsPath '{state.get('ItemsPath', '$')}' must select an array",
        )
    return items, keys


def _shape(state: dict[str, Any], build: Build) -> Build:
    """How the reader's and writer's Parameters (JSONPath) or Arguments (JSONata) evaluate."""
    return jsonata_states.arguments if jsonata_states.is_jsonata(state) else build


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


def _distributed_concurrency(name: str, state: dict[str, Any], effective: Any, context: Any) -> int:
    """A Distributed Map's MaxConcurrency: how many children run at once (0: no bound but
    Step Functions' own)."""
    value = state.get("MaxConcurrency", 0)
    if "MaxConcurrencyPath" in state:
        value = paths.read(effective, state["MaxConcurrencyPath"], context)
        if not _count(value):
            raise StatesError(
                "States.Runtime",
                f"State '{name}': MaxConcurrencyPath '{state['MaxConcurrencyPath']}' selected "
                f"{json.dumps(value)}; expected a non-negative integer",
            )
    return min(int(value), DISTRIBUTED_CONCURRENCY)


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


class _Iterations(FanOut):
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
        super().__init__(name, scope, len(items))
        self.processor: dict[str, Any] = state.get("ItemProcessor") or state["Iterator"]
        self.selector = state.get("ItemSelector", state.get("Parameters"))
        self.effective = effective
        self.context = context
        self.items = items
        self.run_machine = run_machine
        self.build = build
        self.tolerance = _Tolerance()

    def iterate(self, index: int, replay_only: bool = False) -> Ended:
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
            return Ended(index, error=error, failed_event=int(failed["id"]))
        except IterationAborted:
            scope.event("MapIterationAborted", mapIterationAbortedEventDetails=details)
            return Ended(index, aborted=True)
        scope.event("MapIterationSucceeded", mapIterationSucceededEventDetails=details)
        return Ended(index, output=output)

    def failing(self) -> bool:
        failures = sum(1 for e in self.ended.values() if e.error is not None)
        return self.tolerance.exceeded(failures, len(self.items))

    def conclude(self) -> list[Any]:
        if self.stopped_from_outside():
            self.scope.event("MapStateAborted")
            raise IterationAborted
        if self.failing():
            self.scope.event("MapStateFailed")
            if self.tolerance.configured:
                failures = sum(1 for e in self.ended.values() if e.error is not None)
                raise StatesError(
                    "States.ExceedToleratedFailureThreshold",
                    f"State '{self.name}': {failures} of {len(self.items)} iterations failed",
                )
            raise self.first_failure()
        self.scope.event("MapStateSucceeded")
        return [_output(self.ended[index]) for index in range(len(self.items))]


def _output(ended: Ended) -> Any:
    if ended.error is None:
        return ended.output
    return {"Error": ended.error.error, "Cause": ended.error.cause}
