"""Target input shaping as in EventBridge: Input, InputPath and InputTransformer."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_SEGMENT = re.compile(r"\.([A-Za-z0-9_\-$@]+)|\[(\d+)\]|\['([^'\]]+)'\]")
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_\-.]+)>")
_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,256}$")
RESERVED = {
    "aws.events.rule-arn",
    "aws.events.rule-name",
    "aws.events.event.ingestion-time",
    "aws.events.event",
    "aws.events.event.json",
}
MAX_PATHS = 100
_MISSING = object()


class InvalidInputTransform(ValueError):
    """An input path or transformer that EventBridge would reject; names the field."""


def parse_path(path: str, where: str = "InputPath") -> list[str | int]:
    """`$`, `$.detail.gate`, `$.detail.codes[0]`, `$['detail']` into segments."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise InvalidInputTransform(f"{where}: {path!r} must be a JSONPath starting with '$'")
    segments: list[str | int] = []
    position = 1
    while position < len(path):
        match = _SEGMENT.match(path, position)
        if match is None:
            raise InvalidInputTransform(
                f"{where}: {path!r} is not valid at character {position + 1}"
            )
        name, index, quoted = match.groups()
        segments.append(int(index) if index is not None else (name or quoted))
        position = match.end()
    return segments


def validate_input_path(path: str) -> None:
    parse_path(path)


def resolve(event: Any, segments: list[str | int]) -> Any:
    value = event
    for segment in segments:
        try:
            value = value[segment] if _indexable(value, segment) else _MISSING
        except (IndexError, KeyError):
            value = _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def _indexable(value: Any, segment: str | int) -> bool:
    return isinstance(value, list) if isinstance(segment, int) else isinstance(value, dict)


def apply_input_path(event: Any, path: str) -> Any:
    value = resolve(event, parse_path(path))
    return None if value is _MISSING else value


def validate_input_transformer(paths_map: Mapping[str, str], template: str) -> None:
    if not isinstance(paths_map, Mapping):
        raise InvalidInputTransform("InputTransformer.InputPathsMap: expected an object")
    if len(paths_map) > MAX_PATHS:
        raise InvalidInputTransform(f"InputTransformer.InputPathsMap: at most {MAX_PATHS} entries")
    for key, path in paths_map.items():
        where = f"InputTransformer.InputPathsMap.{key}"
        if not _KEY.match(key) or key.startswith("aws."):
            raise InvalidInputTransform(f"{where}: invalid or reserved key name")
        parse_path(path, where)
    if not isinstance(template, str) or not template:
        raise InvalidInputTransform("InputTransformer.InputTemplate: must be a non-empty string")
    for name in _PLACEHOLDER.findall(template):
        if name not in paths_map and name not in RESERVED:
            raise InvalidInputTransform(
                f"InputTransformer.InputTemplate: placeholder <{name}> is not in InputPathsMap"
            )


def apply_input_transformer(
    event: Any,
    paths_map: Mapping[str, str],
    template: str,
    *,
    rule_name: str,
    rule_arn: str,
    ingestion_time: str,
) -> Any:
    """Fill the template; the result is parsed JSON when it is JSON, otherwise the text."""
    values: dict[str, Any] = {
        name: resolve(event, parse_path(path)) for name, path in paths_map.items()
    }
    values |= {
        "aws.events.rule-arn": rule_arn,
        "aws.events.rule-name": rule_name,
        "aws.events.event.ingestion-time": ingestion_time,
        "aws.events.event": event,
        "aws.events.event.json": json.dumps(event, separators=(",", ":")),
    }
    looks_like_json = template.lstrip()[:1] in {"{", "[", '"'}
    output = _substitute(template, values, json_template=looks_like_json)
    if looks_like_json:
        try:
            return json.loads(output)
        except json.JSONDecodeError:
            return output
    return output


def _substitute(template: str, values: Mapping[str, Any], *, json_template: bool) -> str:
    parts: list[str] = []
    in_string = False
    position = 0
    while position < len(template):
        char = template[position]
        match = _PLACEHOLDER.match(template, position) if char == "<" else None
        if match and match.group(1) in values:
            parts.append(
                _render(values[match.group(1)], quoted=in_string, json_template=json_template)
            )
            position = match.end()
            continue
        if char == "\\" and in_string:
            parts.append(template[position : position + 2])
            position += 2
            continue
        if char == '"':
            in_string = not in_string
        parts.append(char)
        position += 1
    return "".join(parts)


def _render(value: Any, *, quoted: bool, json_template: bool) -> str:
    if value is _MISSING:
        return "" if quoted or not json_template else "null"
    if quoted:
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        return json.dumps(text)[1:-1]
    if isinstance(value, str) and not json_template:
        return value
    return json.dumps(value, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class TargetInput:
    """One target's shaping: a constant, a path, a transformer, or the whole event."""

    constant: Any = None
    has_constant: bool = False
    input_path: str | None = None
    paths_map: dict[str, str] = field(default_factory=dict)
    template: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TargetInput:
        chosen = [key for key in ("input", "input_path", "input_transformer") if key in config]
        if len(chosen) > 1:
            raise InvalidInputTransform(
                "set at most one of input, input_path and input_transformer"
            )
        if "input" in config:
            return cls(constant=config["input"], has_constant=True)
        if "input_path" in config:
            validate_input_path(config["input_path"])
            return cls(input_path=config["input_path"])
        if "input_transformer" in config:
            spec = config["input_transformer"]
            paths = dict(spec.get("input_paths_map") or {})
            template = spec.get("input_template")
            validate_input_transformer(paths, template)
            return cls(paths_map=paths, template=template)
        return cls()

    def shape(self, event: Any, *, rule_name: str, rule_arn: str, ingestion_time: str) -> Any:
        if self.has_constant:
            return self.constant
        if self.input_path is not None:
            return apply_input_path(event, self.input_path)
        if self.template is not None:
            return apply_input_transformer(
                event,
                self.paths_map,
                self.template,
                rule_name=rule_name,
                rule_arn=rule_arn,
                ingestion_time=ingestion_time,
            )
        return event
