"""States in JSONata: `Arguments` and `Output` instead of the five JSONPath fields, `Assign`,
Choice `Condition`, Map `Items`, and expressions in the numeric, Wait and Fail fields.

A JSONata state is resolved into the shape the interpreter runs (its expressions evaluated, or
`Arguments` standing where `Parameters` stands, evaluated by `arguments`), so Retry, Catch,
Map, Parallel, tasks and the history are the same code for both query languages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jetbridge.workflows.asl import jsonata
from jetbridge.workflows.asl.choice import timestamp
from jetbridge.workflows.asl.errors import StatesError
from jetbridge.workflows.asl.jsonata import bindings, template, typed

# The Map items a JSONata state evaluated from `Items`, kept in its resolved form.
ITEMS = "\x00items"
MAX_SECONDS = 99_999_999
Work = Callable[[str, dict[str, Any], Any, dict[str, Any]], Any]
Wait = Callable[[dict[str, Any], Any], None]


def is_jsonata(state: dict[str, Any]) -> bool:
    return state.get("QueryLanguage") == jsonata.JSONATA


def arguments(value: Any, data: Any, context: Any) -> Any:
    """`Arguments` (or a Map's `ItemSelector`) evaluated against the state's input."""
    return template(value, "Arguments", bindings(context, data))


def item_selector(value: Any, data: Any, context: Any) -> Any:
    return template(value, "ItemSelector", bindings(context, data))


def run_state(
    name: str,
    state: dict[str, Any],
    data: Any,
    context: dict[str, Any],
    work: Work,
    wait: Wait,
) -> tuple[Any, str | None, dict[str, Any]]:
    """The state's output, the next state's name (None at the end) and what it assigns."""
    kind = state["Type"]
    following = None if state.get("End") else state.get("Next")
    scope = bindings(context, data)
    if kind == "Choice":
        return _choice(name, state, data, context)
    if kind == "Fail":
        raise StatesError(
            _text(state, "Error", scope, "States.Fail"), _text(state, "Cause", scope, "")
        )
    if kind == "Wait":
        wait(_wait_resolved(state, scope), data)
        return _finish(state, data, scope), following, _assign(state, scope)
    if kind in {"Pass", "Succeed"}:
        return _finish(state, data, scope), following, _assign(state, scope)
    result = work(name, resolve(state, data, context), data, context)
    after = bindings(context, data, result=result, with_result=True)
    return _finish(state, result, after), following, _assign(state, after)


def caught(
    handler: dict[str, Any], error_output: dict[str, Any], data: Any, context: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """A Catch's output (its `Output`, by default the error output) and what it assigns."""
    scope = bindings(context, data, error_output=error_output, with_error=True)
    assigned = template(handler.get("Assign", {}), "Assign", scope)
    output = template(handler["Output"], "Output", scope) if "Output" in handler else error_output
    return output, assigned


def resolve(state: dict[str, Any], data: Any, context: dict[str, Any]) -> dict[str, Any]:
    """A Task, Parallel or Map state in the shape the interpreter runs: `Arguments` where
    `Parameters` stands, and the numbers and Map items its expressions give."""
    scope = bindings(context, data)
    resolved = {k: v for k, v in state.items() if k not in {"Arguments", "Output", "Assign"}}
    if "Arguments" in state:
        resolved["Parameters"] = state["Arguments"]
    for field, expected, valid in (
        ("TimeoutSeconds", f"a positive integer up to {MAX_SECONDS}", _positive),
        ("HeartbeatSeconds", f"a positive integer up to {MAX_SECONDS}", _positive),
        ("MaxConcurrency", "a non-negative integer", _count),
        ("ToleratedFailureCount", "a non-negative integer", _count),
        ("ToleratedFailurePercentage", "a number from 0 to 100", _percentage),
    ):
        if field in state:
            value = template(state[field], field, scope)
            resolved[field] = typed(value, field, expected, valid(value))
    if "ItemBatcher" in state:
        resolved["ItemBatcher"] = _batcher(state["ItemBatcher"], scope)
    if "ItemReader" in state and "MaxItems" in state["ItemReader"].get("ReaderConfig", {}):
        reader = state["ItemReader"]
        most = template(
            reader["ReaderConfig"]["MaxItems"], "ItemReader/ReaderConfig/MaxItems", scope
        )
        typed(most, "ItemReader/ReaderConfig/MaxItems", "a non-negative integer", _count(most))
        config = {**reader["ReaderConfig"], "MaxItems": most}
        resolved["ItemReader"] = {**reader, "ReaderConfig": config}
    if state["Type"] == "Map" and "ItemReader" not in state:
        items = template(state.get("Items", "{% $states.input %}"), "Items", scope)
        resolved[ITEMS] = typed(items, "Items", "an array", isinstance(items, list))
    return resolved


def _batcher(batcher: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    """An ItemBatcher's numbers and BatchInput, their expressions evaluated."""
    resolved = dict(batcher)
    for field in ("MaxItemsPerBatch", "MaxInputBytesPerBatch"):
        if field in batcher:
            value = template(batcher[field], f"ItemBatcher/{field}", scope)
            valid = _positive(value)
            resolved[field] = typed(value, f"ItemBatcher/{field}", "a positive integer", valid)
    if "BatchInput" in batcher:
        batch_input = template(batcher["BatchInput"], "ItemBatcher/BatchInput", scope)
        valid = isinstance(batch_input, dict)
        resolved["BatchInput"] = typed(batch_input, "ItemBatcher/BatchInput", "an object", valid)
    return resolved


def _choice(
    name: str, state: dict[str, Any], data: Any, context: dict[str, Any]
) -> tuple[Any, str | None, dict[str, Any]]:
    scope = bindings(context, data)
    for index, rule in enumerate(state["Choices"]):
        field = f"Choices[{index}].Condition"
        matched = template(rule["Condition"], field, scope)
        if typed(matched, field, "a boolean", isinstance(matched, bool)):
            # The state's Assign applies whichever rule matches; the rule's own adds to it.
            assigned = {**_assign(state, scope), **_assign(rule, scope)}
            return _finish(state, data, scope), rule["Next"], assigned
    if "Default" in state:
        return _finish(state, data, scope), state["Default"], _assign(state, scope)
    raise StatesError(
        "States.NoChoiceMatched", f"No Choice Rules matched and no Default in state '{name}'"
    )


def _finish(state: dict[str, Any], default: Any, scope: dict[str, Any]) -> Any:
    """The state's output: its `Output` evaluated, else `default` (the result or the input)."""
    return template(state["Output"], "Output", scope) if "Output" in state else default


def _assign(state: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    if not state.get("Assign"):
        return {}
    assigned: dict[str, Any] = template(state["Assign"], "Assign", scope)
    return assigned


def _text(state: dict[str, Any], field: str, scope: dict[str, Any], default: str) -> str:
    value = template(state.get(field, default), field, scope)
    return str(typed(value, field, "a string", isinstance(value, str)))


def _wait_resolved(state: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    if "Seconds" in state:
        seconds = template(state["Seconds"], "Seconds", scope)
        expected = f"a non-negative integer up to {MAX_SECONDS}"
        valid = _count(seconds) and seconds <= MAX_SECONDS
        return {"Seconds": typed(seconds, "Seconds", expected, valid)}
    moment = template(state["Timestamp"], "Timestamp", scope)
    expected = "an ISO-8601 extended offset date-time string"
    return {"Timestamp": typed(moment, "Timestamp", expected, timestamp(moment) is not None)}


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(value: Any) -> bool:
    return _integer(value) and 0 < value <= MAX_SECONDS


def _count(value: Any) -> bool:
    return _integer(value) and value >= 0


def _percentage(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 100
