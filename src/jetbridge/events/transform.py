"""Target input shaping as EventBridge does it: Input, InputPath and InputTransformer.

The template rules follow the EventBridge user guide ("input transformation"): a placeholder
in a JSON value position becomes the value's JSON (strings gain their quotes); a placeholder
inside a quoted string is inserted as text, escaped so the string stays valid, with objects and
arrays losing their inner quotes; a path that matches nothing is `null` in a value position and
empty inside a string. A template that is valid JSON after substitution is delivered as that
JSON value; any other template (plain text, several quoted lines) is delivered as text.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

MAX_PATHS = 100
MAX_KEY_LENGTH = 256
MAX_PATH_LENGTH = 256
MAX_TEMPLATE_LENGTH = 8192
MAX_INPUT_LENGTH = 8192
RULE_ARN = "aws.events.rule-arn"
RULE_NAME = "aws.events.rule-name"
INGESTION_TIME = "aws.events.event.ingestion-time"
EVENT = "aws.events.event"
EVENT_JSON = "aws.events.event.json"
RESERVED = frozenset({RULE_ARN, RULE_NAME, INGESTION_TIME, EVENT, EVENT_JSON})
CONFIG_KEYS = ("input", "input_path", "input_transformer")

_KEY = re.compile(r"[A-Za-z0-9_\-]+")
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_\-.]+)>")
_DOT_STEP = re.compile(r"\.(?:([A-Za-z0-9_\-/]+)|(\*))|\[(?:(\d+)|(\*))\]")
_BRACKET_STEP = re.compile(r"\[(?:'([^']*)'|\"([^\"]*)\")\]")
_MISSING: Any = object()


class InvalidInputTransform(ValueError):
    """Input shaping that EventBridge would reject; the message starts with the field's name."""


class _Wildcard(enum.Enum):
    ANY = "*"


_Step = str | int | _Wildcard


def _show(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _parse_path(path: str, *, where: str = "InputPath", brackets: bool = True) -> tuple[_Step, ...]:
    """Steps of `$`, `$.detail.gate`, `$.codes[0]`, `$.resources[*]`; `$['a b']` if `brackets`."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise InvalidInputTransform(f"{where}: expected a JSONPath starting with '$'")
    if len(path) > MAX_PATH_LENGTH:
        raise InvalidInputTransform(f"{where}: longer than {MAX_PATH_LENGTH} characters")
    steps: list[_Step] = []
    position = 1
    while position < len(path):
        match = _DOT_STEP.match(path, position) or (
            _BRACKET_STEP.match(path, position) if brackets else None
        )
        if match is None:
            expected = "'.name', '[index]' or a '*' wildcard"
            raise InvalidInputTransform(
                f"{where}: {_show(path)} is not supported at character {position + 1};"
                f" expected {expected}"
            )
        steps.append(_step(match))
        position = match.end()
    return tuple(steps)


def _step(match: re.Match[str]) -> _Step:
    groups = match.groups()
    if match.re is _BRACKET_STEP:
        return groups[0] if groups[0] is not None else groups[1]
    name, dot_star, index, bracket_star = groups
    if name is not None:
        return name
    if index is not None:
        return int(index)
    assert dot_star or bracket_star
    return _Wildcard.ANY


def _resolve(event: Any, steps: tuple[_Step, ...]) -> Any:
    """The value at `steps`; a list of matches once a wildcard is involved; else `_MISSING`."""
    matches = [event]
    for step in steps:
        matches = [child for item in matches for child in _children(item, step)]
    if _Wildcard.ANY in steps:
        return matches
    return matches[0] if matches else _MISSING


def _children(value: Any, step: _Step) -> list[Any]:
    if step is _Wildcard.ANY:
        if isinstance(value, dict):
            return list(value.values())
        return list(value) if isinstance(value, list) else []
    if isinstance(step, int):
        return [value[step]] if isinstance(value, list) and step < len(value) else []
    return [value[step]] if isinstance(value, dict) and step in value else []


def validate_input_path(path: str) -> None:
    """Raise `InvalidInputTransform` unless `path` is an InputPath EventBridge accepts."""
    _parse_path(path)


def apply_input_path(event: Any, path: str) -> Any:
    """The part of `event` that `path` selects; `None` (JSON null) when nothing matches."""
    value = _resolve(event, _parse_path(path))
    return None if value is _MISSING else value


@dataclass(frozen=True, slots=True)
class _Slot:
    name: str
    quoted: bool


_Part = str | _Slot


def _scan(template: str) -> tuple[_Part, ...]:
    """Split the template into literal text and placeholders, noting which sit inside quotes."""
    parts: list[_Part] = []
    text: list[str] = []
    in_string = False
    position = 0
    while position < len(template):
        char = template[position]
        placeholder = _PLACEHOLDER.match(template, position) if char == "<" else None
        if placeholder is not None:
            parts.append("".join(text))
            text.clear()
            parts.append(_Slot(placeholder.group(1), in_string))
            position = placeholder.end()
            continue
        step = 2 if char == "\\" and in_string else 1
        if char == '"':
            in_string = not in_string
        text.append(template[position : position + step])
        position += step
    parts.append("".join(text))
    return tuple(part for part in parts if part != "")


def _check_key(key: Any) -> None:
    if not isinstance(key, str) or not _KEY.fullmatch(key) or len(key) > MAX_KEY_LENGTH:
        shown = _show(key) if isinstance(key, str) else type(key).__name__
        reason = "is reserved" if key in RESERVED else "must be 1-256 letters, digits, '_' or '-'"
        raise InvalidInputTransform(f"InputTransformer.InputPathsMap: key {shown} {reason}")


def _check_template(template: Any) -> tuple[_Part, ...]:
    where = "InputTransformer.InputTemplate"
    if not isinstance(template, str) or not template:
        raise InvalidInputTransform(f"{where}: expected a non-empty string")
    if len(template) > MAX_TEMPLATE_LENGTH:
        raise InvalidInputTransform(f"{where}: longer than {MAX_TEMPLATE_LENGTH} characters")
    return _scan(template)


def _check_slots(parts: tuple[_Part, ...], names: Mapping[str, Any], template: str) -> None:
    where = "InputTransformer.InputTemplate"
    for slot in (part for part in parts if isinstance(part, _Slot)):
        if slot.name not in names and slot.name not in RESERVED:
            raise InvalidInputTransform(f"{where}: <{slot.name}> is not in InputPathsMap")
        if slot.quoted and slot.name in (EVENT, EVENT_JSON):
            raise InvalidInputTransform(
                f"{where}: <{slot.name}> can only be a JSON value, not part of a string"
            )
    if template.lstrip().startswith("{") and _placeholder_is_a_key(parts):
        raise InvalidInputTransform(f"{where}: a placeholder cannot be used as an object key")


def _placeholder_is_a_key(parts: tuple[_Part, ...]) -> bool:
    """Substitute markers and parse: a marker in an object key means a placeholder key."""
    marker = "\ue000"
    text = "".join(
        part if isinstance(part, str) else (marker if part.quoted else f'"{marker}"')
        for part in parts
    )
    found = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal found
        found = found or any(marker in key for key, _ in items)
        return dict(items)

    try:
        json.loads(text, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return False
    return found


@dataclass(frozen=True, slots=True)
class InputTransformer:
    """A validated InputPathsMap and InputTemplate, parsed once and applied per event."""

    paths: tuple[tuple[str, tuple[_Step, ...]], ...]
    parts: tuple[_Part, ...]

    @classmethod
    def compile(cls, paths_map: Mapping[str, str], template: str) -> InputTransformer:
        if not isinstance(paths_map, Mapping):
            raise InvalidInputTransform("InputTransformer.InputPathsMap: expected an object")
        if len(paths_map) > MAX_PATHS:
            raise InvalidInputTransform(
                f"InputTransformer.InputPathsMap: at most {MAX_PATHS} entries, got {len(paths_map)}"
            )
        paths: list[tuple[str, tuple[_Step, ...]]] = []
        for key, path in paths_map.items():
            _check_key(key)
            where = f"InputTransformer.InputPathsMap.{key}"
            paths.append((key, _parse_path(path, where=where, brackets=False)))
        parts = _check_template(template)
        _check_slots(parts, paths_map, template)
        return cls(tuple(paths), parts)

    def apply(self, event: Any, *, rule_name: str, rule_arn: str, ingestion_time: str) -> Any:
        """Fill the template: the parsed JSON value when it is JSON, otherwise the text."""
        used = {part.name for part in self.parts if isinstance(part, _Slot)}
        values = {name: _resolve(event, steps) for name, steps in self.paths if name in used}
        values |= {RULE_NAME: rule_name, RULE_ARN: rule_arn, INGESTION_TIME: ingestion_time}
        if EVENT in used:
            values[EVENT] = _without_detail(event)
        values[EVENT_JSON] = event
        try:
            return json.loads(self._render(values, json_mode=True), parse_constant=_not_json)
        except (ValueError, RecursionError):
            return self._render(values, json_mode=False)

    def _render(self, values: Mapping[str, Any], *, json_mode: bool) -> str:
        return "".join(
            part
            if isinstance(part, str)
            else _render(values.get(part.name, _MISSING), quoted=part.quoted, json_mode=json_mode)
            for part in self.parts
        )


def _without_detail(event: Any) -> Any:
    if not isinstance(event, dict):
        return event
    return {key: value for key, value in event.items() if key != "detail"}


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _render(value: Any, *, quoted: bool, json_mode: bool) -> str:
    if value is _MISSING:
        return "null" if json_mode and not quoted else ""
    if quoted:
        # Objects and arrays inside a string lose their own quotes, as in EventBridge; the
        # text is then escaped so the surrounding string stays one valid JSON string.
        text = value if isinstance(value, str) else _dumps(value)
        if isinstance(value, dict | list):
            text = text.replace('"', "")
        return _dumps(text)[1:-1]
    if json_mode or not isinstance(value, str):
        return _dumps(value)
    return value


def validate_input_transformer(paths_map: Mapping[str, str], template: str) -> None:
    """Raise `InvalidInputTransform` unless EventBridge would accept this transformer."""
    InputTransformer.compile(paths_map, template)


def apply_input_transformer(
    event: Any,
    paths_map: Mapping[str, str],
    template: str,
    *,
    rule_name: str,
    rule_arn: str,
    ingestion_time: str,
) -> Any:
    """Validate and apply one transformer (prefer `InputTransformer.compile` for reuse)."""
    transformer = InputTransformer.compile(paths_map, template)
    return transformer.apply(
        event, rule_name=rule_name, rule_arn=rule_arn, ingestion_time=ingestion_time
    )


Mode = Literal["event", "input", "input_path", "input_transformer"]


@dataclass(frozen=True, slots=True)
class TargetInput:
    """What one target receives: the whole event, a constant, a path's value or a template."""

    mode: Mode = "event"
    constant: Any = None
    input_path: str | None = None
    transformer: InputTransformer | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TargetInput:
        """Build from `{"input": ...}`, `{"input_path": ...}` or `{"input_transformer": ...}`."""
        unknown = sorted(str(key) for key in config if key not in CONFIG_KEYS)
        if unknown:
            raise InvalidInputTransform(f"{unknown[0]}: not an input setting")
        chosen = [key for key in CONFIG_KEYS if config.get(key) is not None]
        if len(chosen) > 1:
            raise InvalidInputTransform(
                f"{chosen[1]}: set at most one of input, input_path and input_transformer"
            )
        if not chosen:
            return cls()
        if chosen[0] == "input":
            return cls(mode="input", constant=_constant(config["input"]))
        if chosen[0] == "input_path":
            validate_input_path(config["input_path"])
            return cls(mode="input_path", input_path=config["input_path"])
        return cls(mode="input_transformer", transformer=_transformer(config["input_transformer"]))

    def shape(self, event: Any, *, rule_name: str, rule_arn: str, ingestion_time: str) -> Any:
        """The JSON value to deliver for `event`."""
        if self.mode == "input":
            return self.constant
        if self.mode == "input_path" and self.input_path is not None:
            return apply_input_path(event, self.input_path)
        if self.mode == "input_transformer" and self.transformer is not None:
            return self.transformer.apply(
                event, rule_name=rule_name, rule_arn=rule_arn, ingestion_time=ingestion_time
            )
        return event


def _constant(value: Any) -> Any:
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        raise InvalidInputTransform("Input: expected a JSON value") from None
    if len(text) > MAX_INPUT_LENGTH:
        raise InvalidInputTransform(f"Input: longer than {MAX_INPUT_LENGTH} characters as JSON")
    return value


def _transformer(spec: Any) -> InputTransformer:
    if not isinstance(spec, Mapping):
        raise InvalidInputTransform("InputTransformer: expected an object")
    unknown = sorted(str(key) for key in spec if key not in ("input_paths_map", "input_template"))
    if unknown:
        raise InvalidInputTransform(f"InputTransformer.{unknown[0]}: not a transformer setting")
    return InputTransformer.compile(
        spec.get("input_paths_map") or {}, spec.get("input_template", "")
    )
