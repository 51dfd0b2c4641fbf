"""A state machine as a graph for people to look at: its states (those inside Parallel branches
and Map iterations too) and transitions, each state marked with what an execution did there."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# What an execution did at a state, as the console colours it.
NOT_REACHED, ENTERED, SUCCEEDED, FAILED, CURRENT = (
    "not-reached",
    "entered",
    "succeeded",
    "failed",
    "current",
)
ENDED_BADLY = {"FAILED", "TIMED_OUT", "ABORTED"}


def execution_graph(
    definition: Mapping[str, Any], history: Iterable[Mapping[str, Any]], status: str
) -> dict[str, Any]:
    """Nodes (`id`, `name`, `type`, `parent` container or None, `status`) and edges (`from`,
    `to`, `kind`: next, choice, default, catch, start) of `definition`, with the states'
    progress read from the execution's `history` and `status`."""
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    _machine(definition, None, "", nodes, edges)
    progress = _progress(history)
    open_status = CURRENT if status == "RUNNING" else FAILED if status in ENDED_BADLY else ENTERED
    for node in nodes:
        entered, exited = progress.get(node["name"], (0, 0))
        if node["type"] == "Container" or entered == 0:
            node["status"] = NOT_REACHED
        elif entered > exited:
            node["status"] = open_status
        else:
            node["status"] = SUCCEEDED
    for node in nodes:  # a container shows the state of the state that holds it
        if node["type"] == "Container" and node["parent"] is not None:
            holder = next(n for n in nodes if n["id"] == node["parent"])
            node["status"] = holder["status"]
    return {"start": definition.get("StartAt"), "status": status, "nodes": nodes, "edges": edges}


def _machine(
    machine: Mapping[str, Any],
    parent: str | None,
    prefix: str,
    nodes: list[dict[str, Any]],
    edges: list[dict[str, str]],
) -> None:
    states = machine.get("States")
    if not isinstance(states, Mapping):
        return
    start = machine.get("StartAt")
    if parent is not None and isinstance(start, str):
        edges.append({"from": parent, "to": prefix + start, "kind": "start"})
    for name, state in states.items():
        if not isinstance(state, Mapping):
            continue
        node_id = prefix + name
        nodes.append({"id": node_id, "name": name, "type": state.get("Type"), "parent": parent})
        for target, kind in _transitions(state):
            if target in states:
                edges.append({"from": node_id, "to": prefix + target, "kind": kind})
        for index, branch in enumerate(_branches(state)):
            container = f"{node_id}/{index}"
            nodes.append({"id": container, "name": "", "type": "Container", "parent": node_id})
            _machine(branch, container, container + "/", nodes, edges)


def _transitions(state: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    if isinstance(state.get("Next"), str):
        yield state["Next"], "next"
    for choice in state.get("Choices") or ():
        if isinstance(choice, Mapping) and isinstance(choice.get("Next"), str):
            yield choice["Next"], "choice"
    if isinstance(state.get("Default"), str):
        yield state["Default"], "default"
    for catcher in state.get("Catch") or ():
        if isinstance(catcher, Mapping) and isinstance(catcher.get("Next"), str):
            yield catcher["Next"], "catch"


def _branches(state: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if state.get("Type") == "Parallel":
        return [b for b in state.get("Branches") or () if isinstance(b, Mapping)]
    if state.get("Type") == "Map":
        inner = state.get("ItemProcessor") or state.get("Iterator")
        return [inner] if isinstance(inner, Mapping) else []
    return []


def _progress(history: Iterable[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """How many times each state (by name) was entered and exited (not counting what a
    redrive superseded)."""
    counts: dict[str, tuple[int, int]] = {}
    events = list(history)
    skipped = {
        number
        for event in events
        if event.get("type") == "ExecutionRedriven"
        for number in event.get("supersededEventIds") or ()
    }
    for event in events:
        if event.get("id") in skipped:
            continue
        kind = str(event.get("type", ""))
        if kind.endswith("StateEntered"):
            name = (event.get("stateEnteredEventDetails") or {}).get("name")
            if isinstance(name, str):
                entered, exited = counts.get(name, (0, 0))
                counts[name] = (entered + 1, exited)
        elif kind.endswith("StateExited"):
            name = (event.get("stateExitedEventDetails") or {}).get("name")
            if isinstance(name, str):
                entered, exited = counts.get(name, (0, 0))
                counts[name] = (entered, exited + 1)
    return counts
