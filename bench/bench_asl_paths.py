"""In-process interpreter throughput by kind of path: state transitions per second of a
ten-state Pass chain whose Parameters read reference paths (the direct reader), variables, or
full JSONPath (wildcards and filters, evaluated by python-jsonpath). Prints a markdown table."""

from __future__ import annotations

import argparse
import time
from typing import Any

from jetbridge.workflows import execute

INPUT = {"items": [{"id": i, "status": i % 2, "price": i * 3} for i in range(20)], "a": {"b": 1}}
KINDS = {
    "reference paths (`$.a.b`, `$.items[3].id`)": {"x.$": "$.a.b", "y.$": "$.items[3].id"},
    "variables (`$v`, `$v.b`)": {"x.$": "$v", "y.$": "$w.b"},
    "wildcard (`$.items[*].id`)": {"x.$": "$.items[*].id", "y.$": "$.a.b"},
    "filter (`$.items[?(@.status == 0)].price`)": {
        "x.$": "$.items[?(@.status == 0)].price",
        "y.$": "$.a.b",
    },
}


def chain(parameters: dict[str, Any], states: int = 10) -> dict[str, Any]:
    body: dict[str, Any] = {"P0": {"Type": "Pass", "Assign": {"v": 1, "w": {"b": 2}}, "Next": "P1"}}
    for i in range(1, states):
        state: dict[str, Any] = {"Type": "Pass", "Parameters": parameters, "ResultPath": "$.r"}
        state.update({"Next": f"P{i + 1}"} if i + 1 < states else {"End": True})
        body[f"P{i}"] = state
    return {"StartAt": "P0", "States": body}


def rate(definition: dict[str, Any], executions: int) -> float:
    started = time.perf_counter()
    for _ in range(executions):
        result = execute(definition, INPUT)
        assert result.status == "SUCCEEDED", result.cause
    return executions * 10 / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=300)
    parser.add_argument(
        "--reference-only", action="store_true", help="only the first row (runs on older engines)"
    )
    args = parser.parse_args()
    print("| Parameters read | transitions/s |")
    print("|---|---|")
    for label, parameters in list(KINDS.items())[: 1 if args.reference_only else None]:
        print(f"| {label} | {rate(chain(parameters), args.executions):,.0f} |")


if __name__ == "__main__":
    main()
