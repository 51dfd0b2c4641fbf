"""Which resources a state machine may name, checked before it runs."""

from __future__ import annotations

from typing import Any

import pytest

from jetbridge.workflows import InvalidDefinition, check_resources, validate_definition

LAMBDA = "arn:aws:lambda:local:000000000000:function:"


def task(resource: str, **fields: Any) -> dict[str, Any]:
    return validate_definition(
        {
            "StartAt": "T",
            "States": {"T": {"Type": "Task", "Resource": resource, **fields, "End": True}},
        }
    )


@pytest.mark.parametrize(
    "definition",
    [
        task("notify-ops"),
        task(f"{LAMBDA}notify-ops"),
        task("notify-ops.waitForTaskToken"),
        task("arn:aws:states:::http:invoke", Parameters={"ApiEndpoint": "https://example.org"}),
        task("arn:aws:states:::states:startExecution.sync:2", Parameters={"StateMachineArn": "m"}),
        task("arn:aws:states:::lambda:invoke", Parameters={"FunctionName": "notify-ops"}),
        task("arn:aws:states:::lambda:invoke", Parameters={"FunctionName.$": "$.fn"}),
    ],
)
def test_integrations_and_allowed_handlers_pass(definition: dict[str, Any]) -> None:
    check_resources(definition, {"notify-ops"})


@pytest.mark.parametrize(
    ("definition", "fragment"),
    [
        (task("IssueTicket"), "States.T.Resource: 'IssueTicket'"),
        (task(f"{LAMBDA}IssueTicket"), f"'{LAMBDA}IssueTicket'"),
        (task("os:system"), "'os:system'"),
        (
            task("arn:aws:states:::lambda:invoke", Parameters={"FunctionName": "IssueTicket"}),
            "'IssueTicket'",
        ),
        (task("arn:aws:states:::lambda:invoke"), "'arn:aws:states:::lambda:invoke'"),
        (task("arn:aws:states:::lambda:invoke", Parameters={"FunctionName": 5}), "lambda:invoke"),
        (
            validate_definition(
                {
                    "StartAt": "M",
                    "States": {
                        "M": {
                            "Type": "Map",
                            "Iterator": task("ReserveSeat"),
                            "End": True,
                        }
                    },
                }
            ),
            "States.M.ItemProcessor.States.T.Resource: 'ReserveSeat'",
        ),
    ],
)
def test_other_resources_are_refused_naming_the_state(
    definition: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidDefinition) as refused:
        check_resources(definition, {"notify-ops"})
    assert fragment in str(refused.value)
