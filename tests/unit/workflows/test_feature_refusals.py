"""Every feature docs/workflows.md lists as refused is refused before anything runs, with an
InvalidDefinition naming the field and the feature."""

from __future__ import annotations

from typing import Any

import pytest

from jetbridge.workflows import InvalidDefinition, execute
from jetbridge.workflows.express import run_express


def one(state: dict[str, Any], **machine: Any) -> dict[str, Any]:
    return {"StartAt": "S", "States": {"S": {"End": True, **state}}, **machine}


DISTRIBUTED = {
    "ProcessorConfig": {"Mode": "DISTRIBUTED"},
    "StartAt": "E",
    "States": {"E": {"Type": "Pass", "End": True}},
}
REFUSED = {
    "task Credentials": (
        one({"Type": "Task", "Resource": "echo", "Credentials": {"RoleArn": "r"}}),
        "States.S.Credentials: cross-account task credentials is not supported",
    ),
    "JSONPath function": (
        one({"Type": "Pass", "Parameters": {"n.$": "$.items.length()"}}),
        "States.S.Parameters.n.$",
    ),
    "a JSONPath state in a JSONata machine": (
        one({"Type": "Pass", "QueryLanguage": "JSONPath"}, QueryLanguage="JSONata"),
        "cannot have JSONPath states",
    ),
    "JSONPath fields in a JSONata state": (
        one({"Type": "Pass", "QueryLanguage": "JSONata", "InputPath": "$.a"}),
        "States.S.InputPath: a JSONata state has no InputPath",
    ),
    "JSONata fields in a JSONPath state": (
        one({"Type": "Pass", "Output": 1}),
        'States.S.Output: only a JSONata state has Output (QueryLanguage "JSONata")',
    ),
    "$eval": (
        one({"Type": "Pass", "Output": "{% $eval('1') %}"}, QueryLanguage="JSONata"),
        "$eval is not available",
    ),
    "ItemReader of an Athena query": (
        one(
            {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::athena:getQueryResults",
                    "Parameters": {"Bucket": "b", "Key": "k"},
                },
                "ItemProcessor": DISTRIBUTED,
            }
        ),
        "States.S.ItemReader.Resource: 'arn:aws:states:::athena:getQueryResults' is not supported",
    ),
    "ItemReader of a manifest": (
        one(
            {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "MANIFEST"},
                    "Parameters": {"Bucket": "b", "Key": "k"},
                },
                "ItemProcessor": DISTRIBUTED,
            }
        ),
        "States.S.ItemReader.ReaderConfig.InputType: 'MANIFEST' is not supported",
    ),
    "ResultWriter WriterConfig of an unknown OutputType": (
        one(
            {
                "Type": "Map",
                "ResultWriter": {
                    "Resource": "arn:aws:states:::s3:putObject",
                    "Parameters": {"Bucket": "b"},
                    "WriterConfig": {"OutputType": "PARQUET"},
                },
                "ItemProcessor": DISTRIBUTED,
            }
        ),
        "States.S.ResultWriter.WriterConfig.OutputType: 'PARQUET' is not JSON or JSONL",
    ),
    "ItemBatcher on an inline Map": (
        one(
            {
                "Type": "Map",
                "ItemBatcher": {"MaxItemsPerBatch": 2},
                "ItemProcessor": {"StartAt": "E", "States": {"E": {"Type": "Pass", "End": True}}},
            }
        ),
        "States.S.ItemBatcher: only a Distributed Map",
    ),
}


@pytest.mark.parametrize("feature", REFUSED)
def test_a_refused_feature_is_refused_by_name(feature: str) -> None:
    definition, message = REFUSED[feature]
    called: list[Any] = []
    with pytest.raises(InvalidDefinition) as refused:
        execute(definition, {}, {"echo": called.append})
    assert message in str(refused.value)
    assert called == []


@pytest.mark.parametrize(
    ("resource", "pattern"),
    [
        ("Ask.waitForTaskToken", ".waitForTaskToken"),
        ("arn:aws:states:::glue:startJobRun.sync", ".sync"),
    ],
)
def test_what_express_refuses_is_refused_by_name(resource: str, pattern: str) -> None:
    with pytest.raises(InvalidDefinition) as refused:
        run_express(one({"Type": "Task", "Resource": resource}), {}, {})
    assert "an Express workflow does not support" in str(refused.value)
    assert pattern in str(refused.value)
