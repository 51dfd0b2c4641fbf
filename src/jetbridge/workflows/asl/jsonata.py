"""JSONata in states (`QueryLanguage: "JSONata"`): a string that is wholly `{% expression %}` is
evaluated with jsonata-python, anywhere in a field's value; `$states` holds the state's `input`,
`result`, `errorOutput` and `context`, and each workflow variable is `$name`.

A failure to evaluate, a result that is undefined, or a value of the wrong kind for its field
fails the state with `States.QueryEvaluationError`, naming the expression and the field.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from jetbridge.workflows.asl.errors import StatesError
from jetbridge.workflows.asl.paths import VARIABLES

# jsonata-python raises the whole process's recursion limit to 10,000 when imported; the rest of
# the platform relies on Python's own limit (a deep recursion fails instead of crashing).
_RECURSION_LIMIT = sys.getrecursionlimit()
import jsonata  # noqa: E402
from jsonata import jexception  # noqa: E402
from jsonata.utils import Utils  # noqa: E402

sys.setrecursionlimit(_RECURSION_LIMIT)

JSONATA = "JSONata"
QUERY_ERROR = "States.QueryEvaluationError"
# A hostile expression (an endless recursion, a huge range) stops here instead of holding a
# worker: milliseconds of evaluation and depth of nested calls.
TIMEOUT_MS = 5_000
MAX_DEPTH = 500
# Step Functions' own functions beside JSONata's; `$eval` is not available there.
HASHES = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384"}
HASHES["SHA-512"] = "sha512"
MAX_RANGE = 1_000
# More values than this cannot fit in the 256 KiB a state passes on.
MAX_VALUES = 256 * 1024
_LOCAL = threading.local()


def is_expression(value: Any) -> bool:
    """Whether `value` is a JSONata expression: a string that starts with `{%` and ends `%}`."""
    return (
        isinstance(value, str)
        and len(value) >= 4
        and value.startswith("{%")
        and value.endswith("%}")
    )


def body(value: str) -> str:
    return value[2:-2].strip()


def check(value: str) -> None:
    """Raise ValueError naming the problem when `value` is not a valid JSONata expression."""
    text = body(value)
    if not text:
        raise ValueError("an empty JSONata expression")
    try:
        _compile(text)
    except jexception.JException as exc:
        raise ValueError(f"invalid JSONata expression {text!r}: {exc}") from None
    if "$eval(" in text.replace(" ", ""):
        raise ValueError("$eval is not available in Step Functions' JSONata (use $parse)")


def check_template(where: str, value: Any) -> list[tuple[str, str]]:
    """Every expression inside a field's value, with where it is; invalid ones raise ValueError
    prefixed with their place."""
    found: list[tuple[str, str]] = []
    if is_expression(value):
        try:
            check(value)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        found.append((where, value))
    elif isinstance(value, dict):
        for key, inner in value.items():
            found += check_template(f"{where}.{key}", inner)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += check_template(f"{where}[{index}]", inner)
    return found


def bindings(
    context: Mapping[str, Any],
    data: Any,
    *,
    result: Any = None,
    error_output: Any = None,
    with_result: bool = False,
    with_error: bool = False,
) -> dict[str, Any]:
    """The variables an expression sees: `$states` and every workflow variable."""
    states: dict[str, Any] = {
        "input": data,
        "context": {k: v for k, v in context.items() if not k.startswith("\x00")},
    }
    if with_result:
        states["result"] = result
    if with_error:
        states["errorOutput"] = error_output
    variables = dict(context.get(VARIABLES, {}))
    return {**variables, "states": states}


def template(value: Any, field: str, scope: Mapping[str, Any]) -> Any:
    """A field's value with every expression in it evaluated (keys are never evaluated)."""
    if is_expression(value):
        return evaluate(value, field, scope)
    if isinstance(value, dict):
        return {key: template(inner, f"{field}/{key}", scope) for key, inner in value.items()}
    if isinstance(value, list):
        return [template(inner, f"{field}[{i}]", scope) for i, inner in enumerate(value)]
    return value


def evaluate(value: str, field: str, scope: Mapping[str, Any]) -> Any:
    """One expression's value as plain JSON; undefined or an evaluation error fails the state."""
    text = body(value)
    expression = _compile(text)
    # The clock of the bounds starts when they are set: once per evaluation.
    expression.environment.set_runtime_bounds(TIMEOUT_MS, MAX_DEPTH)
    try:
        found = expression.evaluate(None, {k: _inbound(v) for k, v in scope.items()})
    except (jexception.JException, RecursionError) as exc:
        raise query_error(text, field, f"threw an error: {exc}") from None
    except StatesError:
        raise
    except Exception as exc:  # a Step Functions function given arguments it cannot take
        raise query_error(text, field, f"threw an error: {exc}") from None
    if found is None:
        raise query_error(text, field, "returned nothing (undefined)")
    try:
        return _outbound(found, [MAX_VALUES])
    except TypeError:
        raise query_error(text, field, "returned a function, which is not JSON") from None
    except OverflowError:
        raise StatesError(
            "States.DataLimitExceeded",
            f"The JSONata expression '{text}' specified for the field '{field}' returned a "
            "value over the 256 KiB payload limit.",
        ) from None


def query_error(text: str, field: str, what: str) -> StatesError:
    return StatesError(
        QUERY_ERROR, f"The JSONata expression '{text}' specified for the field '{field}' {what}."
    )


def typed(value: Any, field: str, expected: str, valid: bool) -> Any:
    """A field's evaluated value, or States.QueryEvaluationError when it is not `expected`."""
    if not valid:
        raise StatesError(
            QUERY_ERROR,
            f"The value of the field '{field}' must be {expected}, not {json.dumps(value)}.",
        )
    return value


def _inbound(value: Any) -> Any:
    # jsonata-python reads a Python None binding as undefined; JSON null is its NULL_VALUE.
    return Utils.NULL_VALUE if value is None else value


def _outbound(value: Any, budget: list[int]) -> Any:
    """Plain JSON from what jsonata-python gives; OverflowError past `budget` values (each one
    takes at least a byte of the 256 KiB a state may pass on), before copying a huge result."""
    budget[0] -= 1
    if budget[0] < 0:
        raise OverflowError
    if value is Utils.NULL_VALUE or value is None:
        return None
    if isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        # JSON has one kind of number: 2.0 is 2, as JSONata (JavaScript) writes it.
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, Mapping):
        return {str(k): _outbound(v, budget) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        if len(value) > budget[0]:
            raise OverflowError
        return [_outbound(item, budget) for item in value if item is not None]
    raise TypeError(type(value).__name__)


def _compile(text: str) -> jsonata.Jsonata:
    """A compiled expression, kept per thread (an expression object is not shared between
    threads: the iterations of a Map evaluate side by side)."""
    cache: dict[str, jsonata.Jsonata] | None = getattr(_LOCAL, "cache", None)
    if cache is None:
        cache = _LOCAL.cache = {}
    compiled = cache.get(text)
    if compiled is None:
        compiled = jsonata.Jsonata(text)
        compiled.set_output_convert_nulls(False)
        for name, function in _FUNCTIONS.items():
            compiled.register_lambda(name, function)
        if len(cache) > 512:
            cache.clear()
        cache[text] = compiled
    return compiled


def _partition(array: Any, size: Any) -> list[list[Any]]:
    if not isinstance(array, list) or not _whole(size) or size < 1:
        raise ValueError("$partition takes an array and a positive integer")
    return [list(array[i : i + int(size)]) for i in range(0, len(array), int(size))]


def _range(start: Any, end: Any, step: Any) -> list[int]:
    if not (_whole(start) and _whole(end) and _whole(step)) or step == 0:
        raise ValueError("$range takes integer start, end and a non-zero step")
    values = list(range(int(start), int(end) + (1 if step > 0 else -1), int(step)))
    if len(values) > MAX_RANGE:
        raise ValueError(f"$range gives at most {MAX_RANGE} items")
    return values


def _hash(value: Any, algorithm: Any) -> str:
    if not isinstance(value, str) or algorithm not in HASHES:
        raise ValueError(f"$hash takes a string and one of {', '.join(HASHES)}")
    return hashlib.new(HASHES[algorithm], value.encode()).hexdigest()


def _random(seed: Any = None) -> float:
    return random.Random(seed).random() if seed is not None else random.random()


def _parse(text: Any) -> Any:
    if not isinstance(text, str):
        raise ValueError("$parse takes a string of JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"$parse: not JSON ({exc.msg})") from None


def _whole(value: Any) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer()
    )


_FUNCTIONS: dict[str, Any] = {
    "partition": _partition,
    "range": _range,
    "hash": _hash,
    "random": _random,
    "uuid": lambda: str(uuid.uuid4()),
    "parse": _parse,
}
