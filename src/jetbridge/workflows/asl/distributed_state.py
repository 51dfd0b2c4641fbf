"""A Distributed Map state (`ItemProcessor.ProcessorConfig.Mode: DISTRIBUTED`): its items are
read, selected and batched into the inputs of a Map Run's child executions (`maprun`), and its
result is the children's outputs, or what its ResultWriter wrote.

The parent's history: `MapStateEntered`, `MapStateStarted`, `MapRunStarted`, then
`MapRunSucceeded` and `MapStateSucceeded`, or `MapRunFailed` and `MapStateFailed`. While a
durable run's children go on, the parent is parked and looks again later.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from jetbridge.workflows.asl import distributed_map, jsonata_states
from jetbridge.workflows.asl.errors import StatesError
from jetbridge.workflows.asl.maprun import (
    ChildEnd,
    MapRunOutcome,
    MapRunPlan,
    NewContext,
    RunMachine,
    child_name,
    map_run_arn,
    run_id,
    run_in_memory,
)
from jetbridge.workflows.asl.scope import Scope, Suspended

Build = Callable[[Any, Any, Any], Any]
Items = Callable[[], tuple[list[Any], list[str] | None]]
# Step Functions runs up to 10,000 child executions of a Distributed Map at once.
DISTRIBUTED_CONCURRENCY = 10_000


def is_distributed(state: dict[str, Any]) -> bool:
    processor = state.get("ItemProcessor") or {}
    config = processor.get("ProcessorConfig") or {}
    return bool(config.get("Mode") == "DISTRIBUTED")


def run_distributed(
    name: str,
    state: dict[str, Any],
    effective: Any,
    context: dict[str, Any],
    scope: Scope,
    items: Items,
    settings: dict[str, Any],
    run_machine: RunMachine,
    new_context: NewContext,
    build: Build,
) -> tuple[list[Any], list[dict[str, Any]], str]:
    """Run the Map Run: its children's outputs in the items' order (a failed child's place
    holds its Error and Cause), their ends as ResultWriter records them, and the Map Run's
    ARN; StatesError when the run fails.
    `settings`: the resolved MaxConcurrency and tolerated failures."""
    planned: list[MapRunPlan] = []
    processor = {
        key: value
        for key, value in (state.get("ItemProcessor") or state["Iterator"]).items()
        if key != "ProcessorConfig"
    }
    config = (state.get("ItemProcessor") or {}).get("ProcessorConfig", {})
    machine_name = str(context.get("StateMachine", {}).get("Name", "machine"))
    children = f"{machine_name}/{name}"[:80]  # the children's state machine name
    execution = str(context.get("Execution", {}).get("Name", ""))

    def plan(run: str = "") -> MapRunPlan:
        if not planned:
            inputs, count = _inputs(name, state, effective, context, items, build)
            planned.append(
                MapRunPlan(
                    id=run,
                    state=name,
                    machine=children,
                    processor=processor,
                    inputs=inputs,
                    execution_type=str(config.get("ExecutionType", "STANDARD")),
                    max_concurrency=settings["max_concurrency"],
                    tolerated_count=settings["tolerated_count"],
                    tolerated_percentage=settings["tolerated_percentage"],
                    item_count=count,
                )
            )
        planned[0].id = planned[0].id or run
        return planned[0]

    length = 0 if scope.peek() is not None else len(plan().inputs)
    started = scope.event("MapStateStarted", mapStateStartedEventDetails={"length": length})
    run = run_id(execution, name, int(started["id"]))
    arn = map_run_arn(children, run)
    scope.event("MapRunStarted", mapRunStartedEventDetails={"mapRunArn": arn})
    outcome = _advance(run, plan, scope, run_machine, new_context)
    if outcome.status != "SUCCEEDED":
        error, cause = outcome.error or "States.Runtime", outcome.cause or ""
        scope.event("MapRunFailed", mapRunFailedEventDetails={"error": error, "cause": cause})
        scope.event("MapStateFailed")
        raise StatesError(error, cause)
    scope.event("MapRunSucceeded")
    scope.event("MapStateSucceeded")
    total = max(outcome.ended, default=-1) + 1
    outputs = [_output(outcome.ended.get(index)) for index in range(total)]
    return outputs, records(outcome.ended, children, run), arn


def _advance(
    run: str,
    plan: Callable[[str], MapRunPlan],
    scope: Scope,
    run_machine: RunMachine,
    new_context: NewContext,
) -> MapRunOutcome:
    runtime = scope.runtime
    if runtime.map_runs is None:
        return run_in_memory(plan(run), runtime, run_machine, new_context)
    scope.checkpoint()

    def in_memory(planned: MapRunPlan) -> MapRunOutcome:
        return run_in_memory(planned, runtime, run_machine, new_context)

    outcome = runtime.map_runs.advance(lambda: plan(run), run_id=run, in_memory=in_memory)
    if outcome.status == "RUNNING":
        runtime.check_deadline()
        raise Suspended([], outcome.wake_at)
    return outcome


def _inputs(
    name: str,
    state: dict[str, Any],
    effective: Any,
    context: dict[str, Any],
    items: Items,
    build: Build,
) -> tuple[list[Any], int]:
    """Each child's input: the items selected (ItemSelector, with `$$.Map.Item`) and batched
    (ItemBatcher); and how many items there are."""
    found, keys = items()
    selector = state.get("ItemSelector", state.get("Parameters"))
    selected = found
    if selector is not None:
        selected = [
            build(selector, effective, item_context(context, index, found[index], keys))
            for index in range(len(found))
        ]
    if "ItemBatcher" not in state:
        return selected, len(found)
    batcher = dict(state["ItemBatcher"])
    if "BatchInput" in batcher and not jsonata_states.is_jsonata(state):
        batcher["BatchInput"] = build(batcher["BatchInput"], effective, context)
    return distributed_map.batches(name, batcher, selected, effective, context), len(found)


def item_context(
    context: dict[str, Any], index: int, value: Any, keys: list[str] | None
) -> dict[str, Any]:
    """The context object of one item: `$$.Map.Item.Index` and `Value`, and `Key` for an
    item of an object listing."""
    item: dict[str, Any] = {"Index": index, "Value": value}
    if keys is not None:
        item["Key"] = keys[index]
    return {**context, "Map": {"Item": item}}


def _output(ended: ChildEnd | None) -> Any:
    if ended is None:
        return None
    if ended.status == "SUCCEEDED":
        return ended.output
    return {"Error": ended.error, "Cause": ended.cause}


def records(ended: dict[int, ChildEnd], machine: str, run: str) -> list[dict[str, Any]]:
    """Each child as ResultWriter records its end."""
    found = []
    for index in sorted(ended):
        end = ended[index]
        name = child_name(run, index)
        record: dict[str, Any] = {
            "ExecutionArn": f"arn:jetbridge:states:execution:{machine}:{name}",
            "Name": name,
            "Input": json.dumps(end.input),
            "Status": end.status,
        }
        if end.status == "SUCCEEDED":
            record["Output"] = json.dumps(end.output)
        else:
            record.update({"Error": end.error, "Cause": end.cause})
        found.append(record)
    return found
