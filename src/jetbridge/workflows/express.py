"""Workflow types, as Step Functions has them.

A Standard execution (`WorkflowEngine.start`) is durable: its history is stored event by event,
a crashed worker's execution is resumed where it stood, and no finished task runs again.

An Express execution (`run_express`, StartSyncExecution) runs at once in the caller's thread and
in memory only: nothing of it is stored, so a process that dies takes it with it (at most once),
and its result is the answer to the call. It runs at most five minutes, and, as in Step
Functions, it cannot wait for a callback (`.waitForTaskToken`) or for a job or a nested
execution to finish (`.sync`): a definition that does is refused before anything runs.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jetbridge.workflows import execute, validate_definition
from jetbridge.workflows.asl.errors import InvalidDefinition
from jetbridge.workflows.asl.scope import iso

STANDARD = "STANDARD"
EXPRESS = "EXPRESS"
# Step Functions ends an Express execution after five minutes.
EXPRESS_SECONDS = 300
# What an Express workflow cannot use: resource suffixes, and the pattern each one is.
EXPRESS_REFUSES = {
    ".waitForTaskToken": "the callback pattern (.waitForTaskToken)",
    ".sync": "the run-a-job pattern (.sync)",
    ".sync:2": "the run-a-job pattern (.sync:2)",
}


def check_express(definition: Mapping[str, Any]) -> None:
    """InvalidDefinition naming the state or field an Express workflow cannot have."""
    timeout = definition.get("TimeoutSeconds")
    if isinstance(timeout, int) and timeout > EXPRESS_SECONDS:
        raise InvalidDefinition(
            f"TimeoutSeconds: an Express workflow runs at most {EXPRESS_SECONDS} seconds, "
            f"not {timeout}"
        )
    for where, state in _tasks(definition, ""):
        resource = state.get("Resource", "")
        for suffix, pattern in EXPRESS_REFUSES.items():
            if resource.endswith(suffix):
                raise InvalidDefinition(
                    f"{where}.Resource: an Express workflow does not support {pattern}; "
                    "use a Standard workflow"
                )


def run_express(
    definition: str | Mapping[str, Any],
    input: Any,
    handlers: Mapping[str, Callable[[Any], Any]],
    *,
    name: str | None = None,
    machine: str = "machine",
    store: Path | None = None,
    read_url: Callable[[str], bytes] | None = None,
) -> dict[str, Any]:
    """Run an Express execution to its end in this thread and answer as StartSyncExecution
    does (status, output or error and cause, dates); nothing is stored."""
    body = validate_definition(definition)
    check_express(body)
    limit = min(body.get("TimeoutSeconds", EXPRESS_SECONDS), EXPRESS_SECONDS)
    bounded = {**body, "TimeoutSeconds": limit}
    execution = name or str(uuid.uuid4())
    started = time.time()
    result = execute(
        bounded,
        input,
        handlers,
        name=execution,
        machine_name=machine,
        object_store=store,
        read_url=read_url,
    )
    answer: dict[str, Any] = {
        "executionArn": f"arn:jetbridge:states:express:{machine}:{execution}",
        "stateMachineArn": f"arn:jetbridge:states:stateMachine:{machine}",
        "name": execution,
        "type": EXPRESS,
        "status": result.status,
        "startDate": _date(started),
        "stopDate": _date(time.time()),
        "input": input,
    }
    if result.status == "SUCCEEDED":
        answer["output"] = result.output
    else:
        answer["error"] = result.error
        answer["cause"] = result.cause
    return answer


def _date(moment: float) -> str:
    return iso(datetime.fromtimestamp(moment, UTC))


def _tasks(machine: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in machine["States"].items():
        where = f"{prefix}States.{name}"
        if state["Type"] == "Task":
            yield where, state
        for index, branch in enumerate(state.get("Branches", [])):
            yield from _tasks(branch, f"{where}.Branches[{index}].")
        processor = state.get("ItemProcessor", state.get("Iterator"))
        if processor is not None:
            yield from _tasks(processor, f"{where}.ItemProcessor.")
