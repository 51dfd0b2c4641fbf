"""Definition checks of the query languages: which one each state uses, the fields each one
has, and the JSONata expressions (parsed before anything runs)."""

from __future__ import annotations

import copy
import re
from typing import Any

from jetbridge.workflows.asl import jsonata
from jetbridge.workflows.asl.errors import InvalidDefinition

JSONPATH = "JSONPath"
LANGUAGES = {JSONPATH, jsonata.JSONATA}
# Fields of JSONPath states only: a JSONata state has Arguments and Output instead.
JSONPATH_ONLY = {
    "InputPath", "OutputPath", "Parameters", "ResultSelector", "ResultPath", "Result",
    "ItemsPath", "SecondsPath", "TimestampPath", "ErrorPath", "CausePath",
    "TimeoutSecondsPath", "HeartbeatSecondsPath", "MaxConcurrencyPath",
    "ToleratedFailureCountPath", "ToleratedFailurePercentagePath",
}  # fmt: skip
# Fields of JSONata states only, by state type.
JSONATA_ONLY = {"Arguments", "Output", "Items"}
JSONATA_FIELDS = {
    "Task": {"Arguments", "Output"},
    "Pass": {"Output"},
    "Choice": {"Output"},
    "Wait": {"Output"},
    "Succeed": {"Output"},
    "Fail": set(),
    "Parallel": {"Arguments", "Output"},
    "Map": {"Output", "Items"},
}
# Fields whose value may be a JSONata expression (or hold some) in a JSONata state.
EXPRESSION_FIELDS = (
    "Arguments", "Output", "Items", "ItemSelector", "Seconds", "Timestamp", "Error", "Cause",
    "TimeoutSeconds", "HeartbeatSeconds", "MaxConcurrency", "ToleratedFailureCount",
    "ToleratedFailurePercentage",
)  # fmt: skip
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,79}")


def inherit(definition: dict[str, Any], language: str | None = None) -> dict[str, Any]:
    """A copy of the definition where every state names its query language: its own, else the
    state machine's (Map processors and Parallel branches are within the same machine)."""
    body = copy.deepcopy(definition)
    _inherit(body, language or body.get("QueryLanguage", JSONPATH))
    return body


def _inherit(machine: dict[str, Any], language: str) -> None:
    for state in machine.get("States", {}).values():
        if not isinstance(state, dict):
            continue
        state.setdefault("QueryLanguage", language)
        for branch in state.get("Branches", []) if isinstance(state.get("Branches"), list) else []:
            if isinstance(branch, dict):
                _inherit(branch, language)
        processor = state.get("ItemProcessor", state.get("Iterator"))
        if isinstance(processor, dict):
            _inherit(processor, language)


def language_of(where: str, body: dict[str, Any], machine: str) -> str:
    """The query language a machine or a state declares, refused when it is not one of the two
    or, as Step Functions says, a JSONPath state in a JSONata state machine."""
    language = body.get("QueryLanguage", machine)
    if language not in LANGUAGES:
        raise InvalidDefinition(
            f"{where}QueryLanguage: must be JSONPath or JSONata, not {language!r}"
        )
    if machine == jsonata.JSONATA and language == JSONPATH:
        raise InvalidDefinition(
            f"{where}QueryLanguage: a state machine whose QueryLanguage is JSONata cannot have "
            "JSONPath states"
        )
    return str(language)


def check_fields(where: str, kind: str, state: dict[str, Any], language: str) -> None:
    """Refuse the fields of the other query language, naming the field."""
    if language == jsonata.JSONATA:
        for field in sorted(JSONPATH_ONLY & set(state)):
            raise InvalidDefinition(
                f"{where}.{field}: a JSONata state has no {field} (use Arguments, Output or "
                "JSONata expressions)"
            )
        return
    for field in sorted(JSONATA_ONLY & set(state)):
        raise InvalidDefinition(
            f'{where}.{field}: only a JSONata state has {field} (QueryLanguage "JSONata")'
        )


def check_state(where: str, kind: str, state: dict[str, Any]) -> None:
    """The expressions of a JSONata state and the forms its fields take."""
    for field in EXPRESSION_FIELDS:
        if field in state:
            expressions(f"{where}.{field}", state[field])
    if "Assign" in state:
        assign(f"{where}.Assign", state["Assign"])
    if kind == "Map" and "Items" in state:
        items = state["Items"]
        if not (isinstance(items, list) or jsonata.is_expression(items)):
            raise InvalidDefinition(f"{where}.Items: must be an array or a JSONata expression")
    if kind == "Fail":
        for field in ("Error", "Cause"):
            if field in state and not isinstance(state[field], str):
                raise InvalidDefinition(f"{where}.{field}: must be a string or an expression")
    if kind == "Choice":
        for index, rule in enumerate(state.get("Choices") or []):
            _rule(f"{where}.Choices[{index}]", rule)
    for index, handler in enumerate(state.get("Catch") or []):
        if isinstance(handler, dict):
            here = f"{where}.Catch[{index}]"
            if "ResultPath" in handler:
                raise InvalidDefinition(f"{here}.ResultPath: a JSONata Catch has Output instead")
            if "Output" in handler:
                expressions(f"{here}.Output", handler["Output"])
            if "Assign" in handler:
                assign(f"{here}.Assign", handler["Assign"])


def check_catch(where: str, handler: dict[str, Any]) -> None:
    """A JSONPath Catch has no Output."""
    if "Output" in handler:
        raise InvalidDefinition(
            f'{where}.Output: only a JSONata Catch has Output (QueryLanguage "JSONata")'
        )


def _rule(where: str, rule: Any) -> None:
    if not isinstance(rule, dict):
        raise InvalidDefinition(f"{where}: must be an object")
    if "Variable" in rule:
        raise InvalidDefinition(f"{where}.Variable: a JSONata Choice rule has a Condition instead")
    extra = sorted(set(rule) - {"Condition", "Next", "Assign", "Comment"})
    if extra:
        raise InvalidDefinition(
            f"{where}.{extra[0]}: a JSONata Choice rule has Condition, Next and Assign (the "
            "output is the Choice state's Output)"
        )
    condition = rule.get("Condition")
    if not (isinstance(condition, bool) or jsonata.is_expression(condition)):
        raise InvalidDefinition(f"{where}.Condition: must be a JSONata expression or a boolean")
    expressions(f"{where}.Condition", condition)
    if "Assign" in rule:
        assign(f"{where}.Assign", rule["Assign"])


def assign(where: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise InvalidDefinition(f"{where}: must be an object of variable names")
    for key in value:
        if not VARIABLE_NAME.fullmatch(key):
            raise InvalidDefinition(
                f"{where}.{key}: a variable name is a letter or '_' then up to 79 letters, "
                "digits or '_'"
            )
        if key == "states":
            raise InvalidDefinition(f"{where}.{key}: $states is reserved by Step Functions")
    expressions(where, value)


def expressions(where: str, value: Any) -> None:
    try:
        jsonata.check_template(where, value)
    except ValueError as exc:
        raise InvalidDefinition(str(exc)) from None
