"""ASL paths: `$` (the state's data), `$$` (the context object) and `$name` (a variable), each
followed by JSONPath.

Reference paths (`$.a.b`, `$.a[0]`, `$['a b']`) name one node and are read directly: a missing
node is a `States.Runtime` error. Any other JSONPath (wildcards, slices, unions, filters,
recursive descent) is evaluated by python-jsonpath and, as in Step Functions, yields a list of
every match, possibly empty. Only a reference path may be written to (ResultPath).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass
from typing import Any

from jsonpath import JSONPath, JSONPathEnvironment, JSONPathError

from jetbridge.workflows.asl.errors import StatesError

_SEGMENT = re.compile(r"\.([^.\[\]\s@*?,:()'\"]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")
_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_ENV = JSONPathEnvironment()
# Where the engine keeps an execution's variables inside its context object; `$$` hides it.
VARIABLES = "\x00variables"
MAX_VARIABLE_NAME = 80


@dataclass(frozen=True)
class Path:
    """A parsed path: what it starts from, and its reference segments or its JSONPath query."""

    text: str
    root: str  # "data", "context" or "variable"
    variable: str
    segments: tuple[str | int, ...] | None  # None: not a reference path, see `query`
    query: JSONPath | None  # compiled once: evaluating is then cheap
    singular: bool  # names at most one node (a negative index, say): one value, not a list


def compile_path(path: Any) -> Path:
    """Parse a path; raises ValueError saying what is wrong with it."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise ValueError(f"{path!r} is not a path (it must start with '$')")
    return _compile(path)


@functools.lru_cache(maxsize=4096)
def _compile(path: str) -> Path:
    root, variable, body = "data", "", path[1:]
    if path.startswith("$$"):
        root, body = "context", path[2:]
    elif (named := _VARIABLE.match(path)) is not None:
        root, variable, body = "variable", named.group(1), path[named.end() :]
        if len(variable) > MAX_VARIABLE_NAME:
            raise ValueError(f"{path!r}: variable names are at most {MAX_VARIABLE_NAME} characters")
    segments = _reference(body)
    singular, query = True, None
    if segments is None:
        try:
            compiled = _ENV.compile("$" + body)
        except JSONPathError as exc:
            reason = str(exc).splitlines()[0]
            raise ValueError(f"{path!r} is not a valid JSONPath ({reason})") from None
        if not isinstance(compiled, JSONPath):
            raise ValueError(f"{path!r}: joining paths with '|' or '&' is not JSONPath")
        singular, query = compiled.singular_query(), compiled
    return Path(path, root, variable, segments, query, singular)


def _reference(body: str) -> tuple[str | int, ...] | None:
    segments: list[str | int] = []
    position = 0
    while position < len(body):
        match = _SEGMENT.match(body, position)
        if match is None:
            return None
        name, index, single, double = match.groups()
        segments.append(int(index) if index is not None else (name or single or double or ""))
        position = match.end()
    return tuple(segments)


def parse(path: str) -> list[str | int]:
    """The segments of a reference path (one node, no wildcards or filters) of the data."""
    compiled = compile_path(path)
    if compiled.segments is None:
        raise ValueError(f"{path!r} must be a reference path (no wildcards, slices or filters)")
    return list(compiled.segments)


def check(path: Any, *, reference: bool = False, variables: bool = True) -> None:
    """Raise ValueError when `path` cannot be used where it stands."""
    compiled = compile_path(path)
    if reference and (compiled.segments is None or compiled.root == "context"):
        raise ValueError(f"{path!r} must be a reference path (no wildcards, slices or filters)")
    if not variables and compiled.root == "variable":
        raise ValueError(f"{path!r}: a variable cannot be used here")


def _normal(segments: tuple[str | int, ...]) -> str:
    return "$" + "".join(f"[{s}]" if isinstance(s, int) else f"['{s}']" for s in segments)


def read(data: Any, path: str, context: Any = None, field: str | None = None) -> Any:
    """Value at `path`; a reference path that finds nothing is a States.Runtime error whose
    cause is Step Functions' own."""
    compiled = compile_path(path)
    base = _base(compiled, data, context)
    segments, query = compiled.segments, compiled.query
    if segments is None:
        assert query is not None
        try:
            found = query.findall(base)
        except JSONPathError as exc:
            reason = str(exc).splitlines()[0]
            raise StatesError("States.Runtime", f"Invalid path '{path}' : {reason}") from None
        if not compiled.singular:
            return found
        if not found:
            raise _missing(data, compiled, field, str(query))
        return found[0]
    value = base
    for depth, segment in enumerate(segments):
        found = _step(value, segment)
        if found is _MISSING:
            raise _missing(data, compiled, field, _normal(segments[: depth + 1]))
        value = found
    return value


def _missing(data: Any, compiled: Path, field: str | None, normal: str) -> StatesError:
    """Step Functions' words for a path that finds nothing: in a `.$` field, or elsewhere."""
    if field is not None:
        shown = json.dumps(data, separators=(",", ":"))
        return StatesError(
            "States.Runtime",
            f"The JSONPath '{compiled.text}' specified for the field '{field}' could not be "
            f"found in the input '{shown}'",
        )
    return StatesError(
        "States.Runtime", f"Invalid path '{compiled.text}' : No results for path: {normal}"
    )


def _base(compiled: Path, data: Any, context: Any) -> Any:
    if compiled.root == "data":
        return data
    if compiled.root == "context":
        if isinstance(context, dict):
            return {k: v for k, v in context.items() if k != VARIABLES}
        return context
    variables = context.get(VARIABLES, {}) if isinstance(context, dict) else {}
    if compiled.variable not in variables:
        raise StatesError(
            "States.Runtime",
            f"Invalid path '{compiled.text}': the variable '{compiled.variable}' is not defined",
        )
    return variables[compiled.variable]


_MISSING = object()


def _step(value: Any, segment: str | int) -> Any:
    if isinstance(segment, int):
        return value[segment] if isinstance(value, list) and segment < len(value) else _MISSING
    return value[segment] if isinstance(value, dict) and segment in value else _MISSING


def exists(data: Any, path: str, context: Any = None) -> bool:
    try:
        read(data, path, context)
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
