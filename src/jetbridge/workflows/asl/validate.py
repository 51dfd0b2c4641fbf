"""Definition checks before anything runs; each message names the state and the field."""

from __future__ import annotations

import json
import re
from typing import Any

from jetbridge.workflows.asl import distributed_map, jsonata, paths, validate_jsonata
from jetbridge.workflows.asl.choice import OPERATORS, TESTS
from jetbridge.workflows.asl.errors import InvalidDefinition, StatesError
from jetbridge.workflows.asl.intrinsics import parse_call

COMMON = {"Type", "Comment", "InputPath", "OutputPath", "QueryLanguage"}
# Fields shared by the states that do work and may retry, catch and shape their results.
WORKING = {"Parameters", "ResultSelector", "ResultPath", "Retry", "Catch", "Next", "End", "Assign"}
FIELDS = {
    "Task": COMMON | WORKING | {
        "Resource", "TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds",
        "HeartbeatSecondsPath", "Credentials", "Arguments", "Output",
    },
    "Pass": COMMON | {"Result", "ResultPath", "Parameters", "Next", "End", "Assign", "Output"},
    "Choice": COMMON | {"Choices", "Default", "Assign", "Output"},
    "Wait": COMMON | {"Seconds", "Timestamp", "SecondsPath", "TimestampPath"}
    | {"Next", "End", "Assign", "Output"},
    "Succeed": COMMON | {"Output"},
    "Fail": {"Type", "Comment", "Error", "Cause", "ErrorPath", "CausePath", "QueryLanguage"},
    "Parallel": COMMON | WORKING | {"Branches", "Arguments", "Output"},
    "Map": COMMON | WORKING | {"Items", "Output",
        "Iterator", "ItemProcessor", "ItemsPath", "ItemSelector", "MaxConcurrency",
        "MaxConcurrencyPath", "ToleratedFailurePercentage", "ToleratedFailurePercentagePath",
        "ToleratedFailureCount", "ToleratedFailureCountPath", "ItemReader", "ItemBatcher",
        "ResultWriter", "Label",
    },
}  # fmt: skip
# Fields of Step Functions that this engine does not carry out: refused rather than ignored.
UNSUPPORTED = {
    "Credentials": "cross-account task credentials",
}
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,79}")
MAX_STATES = 10_000
MAX_SECONDS = 99_999_999
# Numeric fields: (what a literal must be, the check) and the Path form each one has.
NUMBERS: dict[str, tuple[str, Any]] = {
    "TimeoutSeconds": (
        f"a positive integer up to {MAX_SECONDS}",
        lambda v: _integer(v) and 0 < v <= MAX_SECONDS,
    ),
    "HeartbeatSeconds": (
        f"a positive integer up to {MAX_SECONDS}",
        lambda v: _integer(v) and 0 < v <= MAX_SECONDS,
    ),
    "Seconds": (
        f"a non-negative number up to {MAX_SECONDS}",
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= MAX_SECONDS,
    ),
    "MaxConcurrency": ("a non-negative integer", lambda v: _integer(v) and v >= 0),
    "ToleratedFailureCount": ("a non-negative integer", lambda v: _integer(v) and v >= 0),
    "ToleratedFailurePercentage": (
        "a number from 0 to 100",
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 100,
    ),
}


def _names_a_state(value: Any, states: dict[str, Any]) -> bool:
    return isinstance(value, str) and value in states


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(definition: Any, where: str = "", machine: str | None = None) -> None:
    """Refuse a definition that cannot run, naming the state and the field. `machine` is the
    query language of the state machine around a Parallel branch or a Map processor."""
    if not isinstance(definition, dict):
        raise InvalidDefinition(f"{where or 'definition'}: must be a JSON object")
    states = definition.get("States")
    if not isinstance(states, dict) or not states:
        raise InvalidDefinition(f"{where}States: must be a non-empty object")
    if len(states) > MAX_STATES:
        raise InvalidDefinition(f"{where}States: more than {MAX_STATES} states")
    start = definition.get("StartAt")
    if not _names_a_state(start, states):
        raise InvalidDefinition(f"{where}StartAt: state {start!r} does not exist")
    language = validate_jsonata.language_of(where, definition, machine or validate_jsonata.JSONPATH)
    if "TimeoutSeconds" in definition:
        expected, valid = NUMBERS["TimeoutSeconds"]
        if not valid(definition["TimeoutSeconds"]):
            raise InvalidDefinition(
                f"{where}TimeoutSeconds: must be {expected}, "
                f"not {json.dumps(definition['TimeoutSeconds'])}"
            )
    for name, state in states.items():
        _state(f"{where}States.{name}", state, states, language)


def _state(where: str, state: Any, states: dict[str, Any], machine: str) -> None:
    if not isinstance(state, dict):
        raise InvalidDefinition(f"{where}: must be an object")
    kind = state.get("Type")
    if not isinstance(kind, str) or kind not in FIELDS:
        raise InvalidDefinition(f"{where}.Type: {kind!r} is not a state type")
    unknown = sorted(set(state) - FIELDS[kind])
    if unknown:
        raise InvalidDefinition(f"{where}.{unknown[0]}: not a field of a {kind} state")
    for field, feature in UNSUPPORTED.items():
        if field in state:
            raise InvalidDefinition(f"{where}.{field}: {feature} is not supported")
    language = validate_jsonata.language_of(f"{where}.", state, machine)
    validate_jsonata.check_fields(where, kind, state, language)
    _transition(where, kind, state, states)
    _nested(where, kind, state, machine)
    if kind == "Map":
        distributed_map.check(where, state, language)
    if "Retry" in state:
        _handlers(f"{where}.Retry", state["Retry"], states, catch=False)
    if language == jsonata.JSONATA:
        _jsonata_state(where, kind, state, states)
        return
    if state.get("ResultPath") is not None:
        _path(f"{where}.ResultPath", state["ResultPath"], reference=True)
    if "Assign" in state:
        _assign(f"{where}.Assign", state["Assign"])
    for field in ("ErrorPath", "CausePath"):
        value = state.get(field)
        if isinstance(value, str) and value.startswith("States."):
            _intrinsic(f"{where}.{field}", value)
        elif value is not None:
            _path(f"{where}.{field}", value)
    for field in (
        "InputPath",
        "OutputPath",
        "ItemsPath",
        "SecondsPath",
        "TimestampPath",
        *(f"{number}Path" for number in NUMBERS),
    ):
        value = state.get(field)
        # Only InputPath and OutputPath may be null (the state then sees or passes on {}).
        if value is not None or (field in state and field not in ("InputPath", "OutputPath")):
            _path(f"{where}.{field}", value)
    _numbers(where, state)
    for field in ("Parameters", "ResultSelector", "ItemSelector"):
        if field in state:
            _template(f"{where}.{field}", state[field])
    if kind == "Task" and not isinstance(state.get("Resource"), str):
        raise InvalidDefinition(f"{where}.Resource: a Task needs a resource string")
    if kind == "Choice":
        _choices(where, state, states)
    if (
        kind == "Wait"
        and sum(f in state for f in ("Seconds", "Timestamp", "SecondsPath", "TimestampPath")) != 1
    ):
        raise InvalidDefinition(
            f"{where}: a Wait state needs one of Seconds, Timestamp, SecondsPath, TimestampPath"
        )
    if kind == "Fail":
        for plain, path in (("Error", "ErrorPath"), ("Cause", "CausePath")):
            if plain in state and path in state:
                raise InvalidDefinition(f"{where}.{path}: cannot be combined with {plain}")
    if "Catch" in state:
        _handlers(f"{where}.Catch", state["Catch"], states, catch=True)


def _nested(where: str, kind: str, state: dict[str, Any], machine: str) -> None:
    """Parallel branches and a Map's processor: state machines within the state machine."""
    if kind == "Parallel":
        branches = state.get("Branches")
        if not isinstance(branches, list) or not branches:
            raise InvalidDefinition(f"{where}.Branches: must be a non-empty array")
        for index, branch in enumerate(branches):
            validate(branch, f"{where}.Branches[{index}].", machine)
    if kind == "Map":
        processor = state.get("ItemProcessor", state.get("Iterator"))
        validate(processor, f"{where}.ItemProcessor.", machine)


def _jsonata_state(where: str, kind: str, state: dict[str, Any], states: dict[str, Any]) -> None:
    validate_jsonata.check_state(where, kind, state)
    for field, (expected, valid) in NUMBERS.items():
        value = state.get(field)
        if field in state and not jsonata.is_expression(value) and not valid(value):
            raise InvalidDefinition(f"{where}.{field}: must be {expected}, not {json.dumps(value)}")
    if kind == "Task" and not isinstance(state.get("Resource"), str):
        raise InvalidDefinition(f"{where}.Resource: a Task needs a resource string")
    if kind == "Wait" and sum(f in state for f in ("Seconds", "Timestamp")) != 1:
        raise InvalidDefinition(f"{where}: a Wait state needs one of Seconds and Timestamp")
    if kind == "Choice":
        choices = state.get("Choices")
        if not isinstance(choices, list) or not choices:
            raise InvalidDefinition(f"{where}.Choices: must be a non-empty array")
        for index, rule in enumerate(choices):
            if not _names_a_state(rule.get("Next"), states):
                raise InvalidDefinition(
                    f"{where}.Choices[{index}].Next: must name an existing state"
                )
        if "Default" in state and not _names_a_state(state["Default"], states):
            raise InvalidDefinition(f"{where}.Default: state {state['Default']!r} does not exist")
    for index, handler in enumerate(state.get("Catch") or []):
        if not isinstance(handler, dict) or not _names_a_state(handler.get("Next"), states):
            raise InvalidDefinition(f"{where}.Catch[{index}].Next: must name an existing state")
    if "Catch" in state:
        _handlers(f"{where}.Catch", state["Catch"], states, catch=True, language=jsonata.JSONATA)


def _numbers(where: str, state: dict[str, Any]) -> None:
    for field, (expected, valid) in NUMBERS.items():
        if field in state and f"{field}Path" in state:
            raise InvalidDefinition(f"{where}.{field}Path: cannot be combined with {field}")
        if field in state and not valid(state[field]):
            raise InvalidDefinition(
                f"{where}.{field}: must be {expected}, not {json.dumps(state[field])}"
            )
    timeout, beat = state.get("TimeoutSeconds"), state.get("HeartbeatSeconds")
    if timeout is not None and beat is not None and beat >= timeout:
        raise InvalidDefinition(
            f"{where}.HeartbeatSeconds: must be smaller than TimeoutSeconds ({timeout})"
        )


def _transition(where: str, kind: str, state: dict[str, Any], states: dict[str, Any]) -> None:
    if kind in {"Succeed", "Fail", "Choice"}:
        if "Next" in state or "End" in state:
            raise InvalidDefinition(f"{where}: a {kind} state has no Next or End")
        return
    has_next, has_end = "Next" in state, state.get("End") is True
    if has_next == has_end:
        raise InvalidDefinition(f"{where}: needs exactly one of Next and End")
    if has_next and not _names_a_state(state["Next"], states):
        raise InvalidDefinition(f"{where}.Next: state {state['Next']!r} does not exist")


def _path(where: str, value: Any, *, reference: bool = False) -> None:
    try:
        paths.check(value, reference=reference, variables=not reference)
    except ValueError as exc:
        raise InvalidDefinition(f"{where}: {exc}") from None


def _intrinsic(where: str, value: str) -> None:
    try:
        parse_call(value)
    except StatesError as exc:
        raise InvalidDefinition(f"{where}: {exc.cause}") from None


def _assign(where: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise InvalidDefinition(f"{where}: must be an object of variable names")
    for key in value:
        name = key.removesuffix(".$")
        if not VARIABLE_NAME.fullmatch(name):
            raise InvalidDefinition(
                f"{where}.{key}: a variable name is a letter or '_' then up to 79 letters, "
                "digits or '_'"
            )
    _template(where, value)


def _template(where: str, value: Any) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key.endswith(".$"):
                if not isinstance(inner, str):
                    raise InvalidDefinition(
                        f"{where}.{key}: must be a path or an intrinsic function"
                    )
                if inner.startswith("States."):
                    _intrinsic(f"{where}.{key}", inner)
                else:
                    _path(f"{where}.{key}", inner)
            else:
                _template(f"{where}.{key}", inner)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            _template(f"{where}[{index}]", inner)


def _choices(where: str, state: dict[str, Any], states: dict[str, Any]) -> None:
    choices = state.get("Choices")
    if not isinstance(choices, list) or not choices:
        raise InvalidDefinition(f"{where}.Choices: must be a non-empty array")
    for index, rule in enumerate(choices):
        here = f"{where}.Choices[{index}]"
        if not isinstance(rule, dict) or not _names_a_state(rule.get("Next"), states):
            raise InvalidDefinition(f"{here}.Next: must name an existing state")
        _rule(here, rule)
        if "Assign" in rule:
            _assign(f"{here}.Assign", rule["Assign"])
    if "Default" in state and not _names_a_state(state["Default"], states):
        raise InvalidDefinition(f"{where}.Default: state {state['Default']!r} does not exist")


def _nested_rule(where: str, rule: Any) -> None:
    """A rule inside And, Or or Not: a condition only, without its own Next or Assign."""
    if not isinstance(rule, dict):
        raise InvalidDefinition(f"{where}: must be an object")
    for field in ("Next", "Assign"):
        if field in rule:
            raise InvalidDefinition(f"{where}.{field}: only a top-level Choice rule has {field}")
    _rule(where, rule)


def _rule(where: str, rule: dict[str, Any]) -> None:
    if "And" in rule or "Or" in rule:
        key = "And" if "And" in rule else "Or"
        if not isinstance(rule[key], list) or not rule[key]:
            raise InvalidDefinition(f"{where}.{key}: must be a non-empty array")
        for index, inner in enumerate(rule[key]):
            _nested_rule(f"{where}.{key}[{index}]", inner)
        return
    if "Not" in rule:
        _nested_rule(f"{where}.Not", rule["Not"])
        return
    if "Variable" not in rule:
        raise InvalidDefinition(f"{where}.Variable: is required")
    _path(f"{where}.Variable", rule["Variable"])
    comparisons = [k for k in rule if k not in {"Variable", "Next", "Comment", "Assign"}]
    if len(comparisons) != 1:
        raise InvalidDefinition(f"{where}: needs exactly one comparison operator")
    operator = comparisons[0]
    if operator not in TESTS and operator.removesuffix("Path") not in OPERATORS:
        raise InvalidDefinition(f"{where}.{operator}: not a comparison operator")


def _handlers(
    where: str,
    value: Any,
    states: dict[str, Any],
    *,
    catch: bool,
    language: str = validate_jsonata.JSONPATH,
) -> None:
    if not isinstance(value, list):
        raise InvalidDefinition(f"{where}: must be an array")
    for index, handler in enumerate(value):
        here = f"{where}[{index}]"
        errors = handler.get("ErrorEquals") if isinstance(handler, dict) else None
        if (
            not isinstance(errors, list)
            or not errors
            or not all(isinstance(e, str) for e in errors)
        ):
            raise InvalidDefinition(f"{here}.ErrorEquals: must be a non-empty array of error names")
        if "States.ALL" in errors and (len(errors) > 1 or index != len(value) - 1):
            raise InvalidDefinition(f"{here}.ErrorEquals: States.ALL must appear alone and last")
        if catch and not _names_a_state(handler.get("Next"), states):
            raise InvalidDefinition(f"{here}.Next: must name an existing state")
        if catch and language == jsonata.JSONATA:
            continue  # its Output and Assign are expressions, checked with the state's
        if catch:
            validate_jsonata.check_catch(here, handler)
        if catch and handler.get("ResultPath") is not None:
            _path(f"{here}.ResultPath", handler["ResultPath"], reference=True)
        if catch and "Assign" in handler:
            _assign(f"{here}.Assign", handler["Assign"])
        if not catch:
            for field in ("IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds"):
                number = handler.get(field, 1)
                if not isinstance(number, int | float) or isinstance(number, bool) or number < 0:
                    raise InvalidDefinition(f"{here}.{field}: must be a non-negative number")
