"""InputPath and InputTransformer, with the EventBridge documentation's examples."""

from __future__ import annotations

from typing import Any

import pytest

from jetbridge.events.transform import (
    InvalidInputTransform,
    TargetInput,
    apply_input_path,
    apply_input_transformer,
)

EVENT: dict[str, Any] = {
    "version": "0",
    "id": "7bf73129-1428-4cd3-a780-95db273d1602",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "123456789012",
    "time": "2015-11-11T21:29:54Z",
    "region": "us-east-1",
    "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
    "detail": {
        "instance-id": "i-0123456789",
        "state": "RUNNING",
        "codes": [7, 9],
        "nested": {"a": True},
    },
}


def transform(paths: dict[str, str], template: str) -> Any:
    return apply_input_transformer(
        EVENT, paths, template, rule_name="r", rule_arn="arn:r", ingestion_time="t"
    )


def test_input_path_selects_values() -> None:
    assert apply_input_path(EVENT, "$.detail")["state"] == "RUNNING"
    assert apply_input_path(EVENT, "$.detail.codes[1]") == 9
    assert apply_input_path(EVENT, "$['detail']['instance-id']") == "i-0123456789"
    assert apply_input_path(EVENT, "$") == EVENT
    assert apply_input_path(EVENT, "$.detail.missing") is None


def test_aws_documentation_example_json_template() -> None:
    paths = {"instance": "$.detail.instance-id", "state": "$.detail.state"}
    template = (
        '{"instance": <instance>, "state": <state>, "text": "<instance> is in state <state>"}'
    )
    assert transform(paths, template) == {
        "instance": "i-0123456789",
        "state": "RUNNING",
        "text": "i-0123456789 is in state RUNNING",
    }


def test_string_template_yields_text() -> None:
    paths = {"instance": "$.detail.instance-id", "state": "$.detail.state"}
    assert (
        transform(paths, '"<instance> is in state <state>"') == "i-0123456789 is in state RUNNING"
    )
    assert transform(paths, "<instance> is in state <state>") == "i-0123456789 is in state RUNNING"


def test_objects_numbers_and_missing_values() -> None:
    paths = {"codes": "$.detail.codes", "nested": "$.detail.nested", "gone": "$.detail.gone"}
    assert transform(paths, '{"c": <codes>, "n": <nested>, "g": <gone>, "s": "<gone>"}') == {
        "c": [7, 9],
        "n": {"a": True},
        "g": None,
        "s": "",
    }


def test_quotes_in_values_are_escaped() -> None:
    event = {"detail": {"remark": 'He said "hi"\n'}}
    result = apply_input_transformer(
        event,
        {"r": "$.detail.remark"},
        '{"text": "<r>"}',
        rule_name="r",
        rule_arn="a",
        ingestion_time="t",
    )
    assert result == {"text": 'He said "hi"\n'}


def test_reserved_variables() -> None:
    result = transform(
        {},
        '{"rule": "<aws.events.rule-name>", "arn": "<aws.events.rule-arn>", "event": <aws.events.event>}',
    )
    assert result["rule"] == "r"
    assert result["arn"] == "arn:r"
    assert result["event"] == EVENT


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"input_path": "detail"}, "InputPath"),
        ({"input_path": "$.a..b"}, "InputPath"),
        ({"input_transformer": {"input_paths_map": {"x": "$.a"}, "input_template": "<y>"}}, "<y>"),
        (
            {"input_transformer": {"input_paths_map": {"bad key": "$.a"}, "input_template": "x"}},
            "bad key",
        ),
        (
            {"input_transformer": {"input_paths_map": {"x": "a"}, "input_template": "<x>"}},
            "InputPathsMap.x",
        ),
        (
            {
                "input_transformer": {
                    "input_paths_map": {f"k{n}": "$.a" for n in range(101)},
                    "input_template": "x",
                }
            },
            "100",
        ),
        ({"input": 1, "input_path": "$"}, "at most one"),
    ],
)
def test_invalid_configurations_name_the_field(config: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidInputTransform, match=fragment.replace("[", r"\[")):
        TargetInput.from_config(config)


def test_target_input_constant_and_default() -> None:
    assert TargetInput.from_config({"input": {"fixed": 1}}).shape(
        EVENT, rule_name="r", rule_arn="a", ingestion_time="t"
    ) == {"fixed": 1}
    assert (
        TargetInput.from_config({}).shape(EVENT, rule_name="r", rule_arn="a", ingestion_time="t")
        == EVENT
    )
