"""The JSONPath subset ASL uses: `$`, `$.a.b`, `$.a[0]`, `$['a b']`, and `$$` for the context."""

from __future__ import annotations

import copy
import re
from typing import Any

from jetbridge.workflows.asl.errors import StatesError

_SEGMENT = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def parse(path: str) -> list[str | int]:
    if not isinstance(path, str) or not path.startswith("$"):
        raise ValueError(f"{path!r} is not a path (it must start with '$')")
    body = path[2:] if path.startswith("$$") else path[1:]
    segments: list[str | int] = []
    position = 0
    while position < len(body):
        match = _SEGMENT.match(body, position)
        if match is None:
            raise ValueError(f"{path!r} is not a valid path at character {position + 1}")
        name, index, single, double = match.groups()
        segments.append(int(index) if index is not None else (name or single or double or ""))
        position = match.end()
    return segments


def read(data: Any, path: str, context: Any = None) -> Any:
    """Value at `path`; a missing field is a States.Runtime error, as in Step Functions."""
    value = context if path.startswith("$$") else data
    for segment in parse(path):
        found = _step(value, segment)
        if found is _MISSING:
            raise StatesError(
                "States.Runtime", f"The JSONPath '{path}' could not be found in the input"
            )
        value = found
    return value


_MISSING = object()


def _step(value: Any, segment: str | int) -> Any:
    if isinstance(segment, int):
        return value[segment] if isinstance(value, list) and segment < len(value) else _MISSING
    return value[segment] if isinstance(value, dict) and segment in value else _MISSING


def exists(data: Any, path: str) -> bool:
    try:
        read(data, path)
    except StatesError:
        return False
    return True


def write(data: Any, path: str | None, value: Any) -> Any:
    """ResultPath: `$` replaces, None discards the result, `$.a.b` creates what is missing."""
    if path is None:
        return data
    segments = parse(path)
    if not segments:
        return value
    result = copy.deepcopy(data)
    if not isinstance(result, dict):
        raise StatesError(
            "States.ResultPathMatchFailure",
            f"Unable to apply ResultPath '{path}' to a non-object input",
        )
    node = result
    for segment in segments[:-1]:
        if not isinstance(segment, str):
            raise StatesError(
                "States.ResultPathMatchFailure", f"ResultPath '{path}' cannot index arrays"
            )
        child = node.get(segment)
        if child is None:
            child = node[segment] = {}
        if not isinstance(child, dict):
            raise StatesError(
                "States.ResultPathMatchFailure", f"Unable to apply ResultPath '{path}'"
            )
        node = child
    last = segments[-1]
    if not isinstance(last, str):
        raise StatesError(
            "States.ResultPathMatchFailure", f"ResultPath '{path}' cannot index arrays"
        )
    node[last] = value
    return result
