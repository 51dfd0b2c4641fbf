"""Intrinsic functions (`States.Format(...)` and friends) with their argument syntax."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import uuid
from collections.abc import Callable
from typing import Any

from jetbridge.jsonlimits import JsonLimits, loads_within
from jetbridge.workflows.asl import paths
from jetbridge.workflows.asl.errors import StatesError

FAIL = "States.IntrinsicFailure"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0

    def fail(self, message: str) -> StatesError:
        return StatesError(FAIL, f"{message} at character {self.position + 1} of {self.text!r}")

    def skip(self) -> None:
        while self.position < len(self.text) and self.text[self.position] == " ":
            self.position += 1

    def call(self) -> tuple[str, list[Any]]:
        self.skip()
        start = self.position
        while self.position < len(self.text) and (
            self.text[self.position].isalnum() or self.text[self.position] == "."
        ):
            self.position += 1
        name = self.text[start : self.position]
        if not name.startswith("States.") or self.text[self.position : self.position + 1] != "(":
            raise self.fail("expected States.<Function>(")
        self.position += 1
        args: list[Any] = []
        self.skip()
        if self.text[self.position : self.position + 1] == ")":
            self.position += 1
            return name, args
        while True:
            args.append(self.argument())
            self.skip()
            char = self.text[self.position : self.position + 1]
            self.position += 1
            if char == ")":
                return name, args
            if char != ",":
                raise self.fail("expected ',' or ')'")

    def argument(self) -> Any:
        self.skip()
        char = self.text[self.position : self.position + 1]
        if char == "'":
            return ("literal", self.string())
        if char == "$":
            return ("path", self.path())
        if self.text.startswith("States.", self.position):
            return ("call", self.call())
        start = self.position
        while self.position < len(self.text) and self.text[self.position] not in ",)":
            self.position += 1
        token = self.text[start : self.position].strip()
        try:
            return ("literal", json.loads(token))
        except json.JSONDecodeError:
            raise self.fail(f"unknown argument {token!r}") from None

    def path(self) -> str:
        """A path argument: up to a ',' or ')' outside its brackets and quoted names."""
        start, depth, quote = self.position, 0, ""
        while self.position < len(self.text):
            char = self.text[self.position]
            if quote:
                quote = "" if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char in "[(":
                depth += 1
            elif char in "])" and depth > 0:
                depth -= 1
            elif char in ",)" and depth == 0:
                break
            self.position += 1
        return self.text[start : self.position].strip()

    def string(self) -> str:
        self.position += 1
        out = []
        while self.position < len(self.text):
            char = self.text[self.position]
            if char == "\\" and self.position + 1 < len(self.text):
                out.append(self.text[self.position + 1])
                self.position += 2
                continue
            if char == "'":
                self.position += 1
                return "".join(out)
            out.append(char)
            self.position += 1
        raise self.fail("unterminated string")


def parse_call(text: str) -> tuple[str, list[Any]]:
    parser = _Parser(text)
    name, args = parser.call()
    parser.skip()
    if parser.position != len(text):
        raise parser.fail("unexpected text after the call")
    if name not in FUNCTIONS:
        raise StatesError(FAIL, f"unknown intrinsic function {name}")
    return name, args


def evaluate(text: str, data: Any, context: Any) -> Any:
    name, args = parse_call(text)
    return _invoke(name, args, data, context)


def _invoke(name: str, args: list[Any], data: Any, context: Any) -> Any:
    values = []
    for kind, value in args:
        if kind == "path":
            values.append(paths.read(data, value, context))
        elif kind == "call":
            values.append(_invoke(value[0], value[1], data, context))
        else:
            values.append(value)
    _check_arguments(name, values)
    try:
        return FUNCTIONS[name](*values)
    except StatesError:
        raise
    except (TypeError, ValueError, IndexError, KeyError, ArithmeticError) as exc:
        raise StatesError(FAIL, f"{name}: {exc}") from None


# What each function's arguments must be: JSON types, "any", or "..." for any number of
# arguments of the type before it; a trailing "?" marks an optional argument.
SIGNATURES: dict[str, tuple[str, ...]] = {
    "States.Format": ("string", "any?", "..."),
    "States.StringToJson": ("string",),
    "States.JsonToString": ("any",),
    "States.Array": ("any?", "..."),
    "States.ArrayPartition": ("array", "integer"),
    "States.ArrayContains": ("array", "any"),
    "States.ArrayRange": ("integer", "integer", "integer"),
    "States.ArrayGetItem": ("array", "integer"),
    "States.ArrayLength": ("array",),
    "States.ArrayUnique": ("array",),
    "States.Base64Encode": ("string",),
    "States.Base64Decode": ("string",),
    "States.Hash": ("any", "string"),
    "States.JsonMerge": ("object", "object", "boolean"),
    "States.MathRandom": ("number", "number", "integer?"),
    "States.MathAdd": ("number", "number"),
    "States.StringSplit": ("string", "string"),
    "States.UUID": (),
}
_TYPES: dict[str, Callable[[Any], bool]] = {
    "any": lambda v: True,
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def _check_arguments(name: str, values: list[Any]) -> None:
    signature = SIGNATURES.get(name)
    if signature is None:
        raise StatesError(FAIL, f"{name}: not an intrinsic function")
    repeats = signature[-1:] == ("...",)
    kinds = [k.rstrip("?") for k in signature if k != "..."]
    least = len([k for k in signature if k != "..." and not k.endswith("?")])
    if len(values) < least or (not repeats and len(values) > len(kinds)):
        raise StatesError(FAIL, f"{name}: takes {least} argument(s), got {len(values)}")
    for index, value in enumerate(values):
        kind = kinds[min(index, len(kinds) - 1)]
        if not _TYPES[kind](value):
            raise StatesError(
                FAIL, f"{name}: argument {index + 1} must be {kind}, not {json.dumps(value)[:60]}"
            )


def _format(template: str, *values: Any) -> str:
    parts = template.split("{}")
    if len(parts) - 1 != len(values):
        raise ValueError(f"{len(parts) - 1} placeholders but {len(values)} arguments")
    out = parts[0]
    for value, part in zip(values, parts[1:], strict=True):
        out += _shown(value) + part
    return out


def _shown(value: Any) -> str:
    """How States.Format renders a value: strings as they are, objects as `{a=1, b=[x, y]}`
    and arrays as `[x, y]` (Step Functions prints Java's maps and lists), the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + ", ".join(_shown(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}={_shown(item)}" for key, item in value.items()) + "}"
    return json.dumps(value)


def _round(value: float) -> int:
    """Step Functions rounds a number to an integer as Java's Math.round does: half up."""
    return math.floor(value + 0.5) if isinstance(value, float) else int(value)


def _partition(items: list[Any], size: int) -> list[list[Any]]:
    if not isinstance(size, int) or size <= 0:
        raise ValueError("chunk size must be a positive integer")
    return [items[i : i + size] for i in range(0, len(items), size)]


def _range(start: int, end: int, step: int) -> list[int]:
    if step == 0:
        raise ValueError("step must not be zero")
    values = range(start, end + (1 if step > 0 else -1), step)
    if len(values) > 1000:  # counted before anything is built
        raise ValueError("ArrayRange is limited to 1000 elements")
    return list(values)


def _hash(value: str, algorithm: str) -> str:
    names = {
        "MD5": "md5",
        "SHA-1": "sha1",
        "SHA-256": "sha256",
        "SHA-384": "sha384",
        "SHA-512": "sha512",
    }
    if algorithm not in names:
        raise ValueError(f"unknown hash algorithm {algorithm}")
    return hashlib.new(names[algorithm], str(value).encode()).hexdigest()


def _merge(left: dict[str, Any], right: dict[str, Any], deep: bool) -> dict[str, Any]:
    if deep:
        raise ValueError("deep merging is not supported (the third argument must be false)")
    return {**left, **right}


def _unique(items: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _split(text: str, separators: str) -> list[str]:
    """Split at any of the separator characters, dropping empty pieces."""
    if not separators:
        raise ValueError("the separator string must not be empty")
    return [piece for piece in re.split(f"[{re.escape(separators)}]", text) if piece]


def _random(start: float, end: float, seed: int | None = None) -> int:
    low, high = _round(start), _round(end)
    if low > high:
        raise ValueError(f"the start ({low}) is greater than the end ({high})")
    return random.Random(seed).randint(low, high) if seed is not None else random.randint(low, high)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "States.Format": _format,
    # Within the JSON limits, so what it makes can be stored and read back like any input;
    # empty or blank text is null, as in Step Functions.
    "States.StringToJson": lambda text: loads_within(text, JsonLimits()) if text.strip() else None,
    "States.JsonToString": lambda value: json.dumps(value, separators=(",", ":")),
    "States.Array": lambda *items: list(items),
    "States.ArrayPartition": _partition,
    "States.ArrayContains": lambda items, value: value in items,
    "States.ArrayRange": _range,
    "States.ArrayGetItem": lambda items, index: items[index],
    "States.ArrayLength": lambda items: len(items),
    "States.ArrayUnique": _unique,
    "States.Base64Encode": lambda text: base64.b64encode(text.encode()).decode(),
    "States.Base64Decode": lambda text: base64.b64decode(text.encode(), validate=True).decode(),
    "States.Hash": _hash,
    "States.JsonMerge": _merge,
    "States.MathRandom": _random,
    "States.MathAdd": lambda a, b: _round(a) + _round(b),
    "States.StringSplit": lambda text, separators: _split(text, separators),
    "States.UUID": lambda: str(uuid.uuid4()),
}
