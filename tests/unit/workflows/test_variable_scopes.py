"""Variables inside Map iterations and Parallel branches stay there."""

from __future__ import annotations

from typing import Any

from jetbridge.workflows import execute


def chain(*states: dict[str, Any]) -> dict[str, Any]:
    body = {}
    for index, state in enumerate(states):
        more = {"Next": f"S{index + 1}"} if index + 1 < len(states) else {"End": True}
        body[f"S{index}"] = {**state, **more}
    return {"StartAt": "S0", "States": body}


def inner(assign: dict[str, Any]) -> dict[str, Any]:
    return chain(
        {"Type": "Pass", "Assign": assign},
        {"Type": "Pass", "Parameters": {"seen.$": "$k"}},
    )


def test_an_inner_assignment_of_an_outer_name_is_seen_inside_and_not_after() -> None:
    result = execute(
        chain(
            {"Type": "Pass", "Assign": {"k": "outer"}},
            {
                "Type": "Map",
                "ItemsPath": "$.xs",
                "ResultPath": "$.mapped",
                "ItemProcessor": inner({"k.$": "$"}),
            },
            {"Type": "Parallel", "ResultPath": "$.branches", "Branches": [inner({"k": "b"})]},
            {"Type": "Pass", "Parameters": {"after.$": "$k", "branches.$": "$.branches"}},
        ),
        {"xs": ["one", "two"]},
    )
    assert result.status == "SUCCEEDED", result.cause
    assert result.output == {"after": "outer", "branches": [{"seen": "b"}]}
    iterations = [
        e
        for e in result.history
        if e["type"] == "PassStateExited"
        and e["stateExitedEventDetails"]["output"].startswith('{"seen"')
    ]
    assert sorted(e["stateExitedEventDetails"]["output"] for e in iterations) == [
        '{"seen": "b"}',
        '{"seen": "one"}',
        '{"seen": "two"}',
    ]
