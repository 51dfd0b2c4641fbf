"""Input, InputPath and InputTransformer, checked against the EventBridge documentation's examples."""

from __future__ import annotations

import re
from typing import Any

import pytest

from jetbridge.events.transform import (
    InputTransformer,
    InvalidInputTransform,
    TargetInput,
    apply_input_path,
    apply_input_transformer,
    validate_input_path,
    validate_input_transformer,
)

# The example EC2 event of the EventBridge user guide ("input transformation").
EVENT: dict[str, Any] = {
    "version": "0",
    "id": "7bf73129-1428-4cd3-a780-95db273d1602",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "123456789012",
    "time": "2015-11-11T21:29:54Z",
    "region": "us-east-1",
    "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
    "detail": {"instance-id": "i-0123456789", "state": "RUNNING"},
}
PATHS = {
    "timestamp": "$.time",
    "instance": "$.detail.instance-id",
    "state": "$.detail.state",
    "resource": "$.resources[0]",
}
RULE_ARN = "arn:aws:events:us-east-2:123456789012:rule/example"


def transform(template: str, paths: dict[str, str] = PATHS, event: Any = EVENT) -> Any:
    return apply_input_transformer(
        event,
        paths,
        template,
        rule_name="example",
        rule_arn=RULE_ARN,
        ingestion_time="2015-11-11T21:29:55Z",
    )


def rejected(fragment: str) -> Any:
    return pytest.raises(InvalidInputTransform, match=re.escape(fragment))


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('"instance <instance> is in <state>"', "instance i-0123456789 is in RUNNING"),
        (r'"instance \"<instance>\" is in <state>"', 'instance "i-0123456789" is in RUNNING'),
        (
            '{\n  "instance" : <instance>,\n  "state": <state>\n}',
            {"instance": "i-0123456789", "state": "RUNNING"},
        ),
        (
            '{"instance": <instance>, "state": "<state>",'
            r' "instanceStatus": "instance \"<instance>\" is in <state>"}',
            {
                "instance": "i-0123456789",
                "state": "RUNNING",
                "instanceStatus": 'instance "i-0123456789" is in RUNNING',
            },
        ),
        (
            '{"instance": <instance>, "state": [9, <state>, true], "Transformed": "Yes"}',
            {"instance": "i-0123456789", "state": [9, "RUNNING", True], "Transformed": "Yes"},
        ),
        ('"<aws.events.rule-name> triggered"', "example triggered"),
        (
            '{"at": <timestamp>, "on": "<resource>"}',
            {"at": EVENT["time"], "on": EVENT["resources"][0]},
        ),
    ],
)
def test_user_guide_examples(template: str, expected: Any) -> None:
    assert transform(template) == expected


def test_reserved_variables_in_json() -> None:
    result = transform(
        '{"ruleArn": <aws.events.rule-arn>, "ruleName": <aws.events.rule-name>,'
        ' "at": "<aws.events.event.ingestion-time>",'
        ' "originalEvent": <aws.events.event>, "full": <aws.events.event.json>}'
    )
    assert result["ruleArn"] == RULE_ARN
    assert result["ruleName"] == "example"
    assert result["at"] == "2015-11-11T21:29:55Z"
    # aws.events.event is the event without its detail; aws.events.event.json is all of it.
    assert result["originalEvent"] == {k: v for k, v in EVENT.items() if k != "detail"}
    assert result["full"] == EVENT


def test_api_reference_templates() -> None:
    paths = {"instance": "$.detail.instance-id", "status": "$.detail.state"}
    assert transform("<instance> is in state <status>", paths) == "i-0123456789 is in state RUNNING"
    assert (
        transform('<instance> is in state "<status>"', paths)
        == 'i-0123456789 is in state "RUNNING"'
    )
    assert transform(
        r'{"myInstance": <instance>,"myStatus": "<instance> is in state \"<status>\""}', paths
    ) == {"myInstance": "i-0123456789", "myStatus": 'i-0123456789 is in state "RUNNING"'}


def test_tutorial_template() -> None:
    event = {"detail-type": "customerCreated"}
    result = transform(
        '"This event was of <detail-type> type."', {"detail-type": "$.detail-type"}, event
    )
    assert result == "This event was of customerCreated type."


def test_objects_and_arrays_keep_their_json_as_values_and_lose_quotes_in_strings() -> None:
    paths = {"detail": "$.detail", "resources": "$.resources"}
    assert transform('{"detail": <detail>, "all": <resources>}', paths) == {
        "detail": EVENT["detail"],
        "all": EVENT["resources"],
    }
    assert (
        transform('"Detail is <detail>"', paths)
        == "Detail is {instance-id:i-0123456789,state:RUNNING}"
    )


def test_numbers_booleans_and_null_inside_and_outside_strings() -> None:
    event = {"detail": {"n": 7, "ok": False, "none": None, "pi": 3.5}}
    paths = {"n": "$.detail.n", "ok": "$.detail.ok", "none": "$.detail.none", "pi": "$.detail.pi"}
    assert transform(
        '{"n": <n>, "ok": <ok>, "none": <none>, "s": "<n>/<ok>/<none>/<pi>"}', paths, event
    ) == {
        "n": 7,
        "ok": False,
        "none": None,
        "s": "7/false/null/3.5",
    }
    assert transform("<n>", paths, event) == 7


def test_missing_paths_are_null_as_values_and_empty_in_strings() -> None:
    paths = {"gone": "$.detail.gone", "deeper": "$.detail.state.deeper", "far": "$.resources[5]"}
    assert transform('{"g": <gone>, "d": <deeper>, "f": <far>, "s": "[<gone>]"}', paths) == {
        "g": None,
        "d": None,
        "f": None,
        "s": "[]",
    }
    assert transform("value: <gone>.", paths) == "value: ."


def test_a_template_that_is_not_json_is_delivered_as_text() -> None:
    lines = '"Instance <instance> changed."\n"Its state is now <state>."'
    assert transform(lines) == '"Instance i-0123456789 changed."\n"Its state is now RUNNING."'
    # A raw newline inside quotes is not JSON either: the text goes out as written.
    assert transform('"first line\nsecond <state>"') == '"first line\nsecond RUNNING"'
    assert transform('"escaped\\nnewline <state>"') == "escaped\nnewline RUNNING"
    assert transform("NaN") == "NaN"
    assert transform("[" * 4000 + "]" * 4000) == "[" * 4000 + "]" * 4000


@pytest.mark.parametrize(
    "hostile",
    [
        'He said "hi"\n',
        '", "injected": "yes',
        "back\\slash \\u0041 \\",
        "<state> <aws.events.rule-name>",
        "</script><b>\u2028\u0000",
        '{"looks": "like json"}',
    ],
)
def test_hostile_values_stay_inside_their_string(hostile: str) -> None:
    event = {"detail": {"text": hostile, "state": "RUNNING"}}
    paths = {"text": "$.detail.text", "state": "$.detail.state"}
    result = transform('{"quoted": "[<text>]", "value": <text>, "state": <state>}', paths, event)
    assert result == {"quoted": f"[{hostile}]", "value": hostile, "state": "RUNNING"}
    assert transform('"<text>"', paths, event) == hostile
    assert transform("<text>", paths, event) == hostile


def test_input_path_selects_values() -> None:
    event = {**EVENT, "detail": {"codes": [7, 9], "items": [{"id": 1}, {"id": 2}, {}], "a b": 1}}
    assert apply_input_path(EVENT, "$") == EVENT
    assert apply_input_path(EVENT, "$.detail") == EVENT["detail"]
    assert apply_input_path(EVENT, "$.detail.instance-id") == "i-0123456789"
    assert apply_input_path(EVENT, "$.resources[0]") == EVENT["resources"][0]
    assert apply_input_path(event, "$.detail.codes[1]") == 9
    assert apply_input_path(event, "$['detail'][\"a b\"]") == 1
    assert apply_input_path(event, "$.detail.codes[*]") == [7, 9]
    assert apply_input_path(event, "$.detail.items[*].id") == [1, 2]
    assert apply_input_path(event, "$.detail.*") == [[7, 9], [{"id": 1}, {"id": 2}, {}], 1]
    assert apply_input_path(event, "$.detail.nothing[*]") == []


@pytest.mark.parametrize(
    "path", ["$.detail.missing", "$.detail.codes[9]", "$.resources.x", "$.detail[0]", "$.time.x"]
)
def test_input_path_that_matches_nothing_is_null(path: str) -> None:
    assert apply_input_path(EVENT, path) is None


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("detail", "InputPath: expected a JSONPath starting with '$'"),
        ("$.", "InputPath: '$.' is not supported at character 2"),
        ("$..detail", "InputPath: '$..detail' is not supported at character 2"),
        ("$.detail[-1]", "at character 9"),
        ("$.detail[?(@.x)]", "at character 9"),
        ("$.a b", "at character 4"),
        ("$." + "a" * 300, "InputPath: longer than 256 characters"),
    ],
)
def test_invalid_input_paths(path: str, fragment: str) -> None:
    with rejected(fragment):
        validate_input_path(path)


@pytest.mark.parametrize(
    ("paths", "template", "fragment"),
    [
        (
            {"gate": "detail.gate"},
            "<gate>",
            "InputTransformer.InputPathsMap.gate: expected a JSONPath",
        ),
        (
            {"gate": "$['detail']"},
            "<gate>",
            "InputTransformer.InputPathsMap.gate: \"$['detail']\" is not",
        ),
        ({"gate": 5}, "<gate>", "InputTransformer.InputPathsMap.gate: expected a JSONPath"),
        ({"bad key": "$.a"}, "x", "InputTransformer.InputPathsMap: key 'bad key' must be"),
        ({"": "$.a"}, "x", "InputTransformer.InputPathsMap: key '' must be"),
        ({"k" * 257: "$.a"}, "x", "must be 1-256"),
        ({"aws.events.rule-name": "$.a"}, "x", "key 'aws.events.rule-name' is reserved"),
        ({f"k{n}": "$.a" for n in range(101)}, "x", "InputPathsMap: at most 100 entries, got 101"),
        ({}, "", "InputTransformer.InputTemplate: expected a non-empty string"),
        ({}, "x" * 8193, "InputTransformer.InputTemplate: longer than 8192 characters"),
        ({"x": "$.a"}, '{"a": <y>}', "InputTransformer.InputTemplate: <y> is not in InputPathsMap"),
        ({}, '"Event: <aws.events.event>"', "<aws.events.event> can only be a JSON value"),
        (
            {},
            '{"e": "<aws.events.event.json>"}',
            "<aws.events.event.json> can only be a JSON value",
        ),
        ({"k": "$.a"}, "{<k>: 1}", "a placeholder cannot be used as an object key"),
        ({"k": "$.a"}, '{"a": {"x-<k>": 1}}', "a placeholder cannot be used as an object key"),
    ],
)
def test_invalid_transformers_name_the_field(
    paths: dict[str, Any], template: str, fragment: str
) -> None:
    with rejected(fragment):
        validate_input_transformer(paths, template)


def test_valid_transformer_edge_cases() -> None:
    validate_input_transformer({f"k{n}": "$.a" for n in range(100)}, "<k0>")
    validate_input_transformer({"k": "$"}, "<k> is not a <tag because of spaces>")
    validate_input_transformer({}, '{"a": <aws.events.event>, "b": "<aws.events.rule-arn>"}')
    with rejected("InputTransformer.InputPathsMap: expected an object"):
        InputTransformer.compile([("k", "$.a")], "<k>")  # type: ignore[arg-type]


def test_target_input_modes() -> None:
    def shape(config: dict[str, Any]) -> Any:
        target = TargetInput.from_config(config)
        return target.shape(EVENT, rule_name="example", rule_arn=RULE_ARN, ingestion_time="t")

    assert shape({}) == EVENT
    assert shape({"input": {"fixed": 1}}) == {"fixed": 1}
    assert shape({"input": 0}) == 0
    assert shape({"input": ""}) == ""
    assert shape({"input_path": "$.detail.state"}) == "RUNNING"
    transformer = {
        "input_paths_map": {"state": "$.detail.state"},
        "input_template": '{"s": <state>}',
    }
    assert shape({"input_transformer": transformer}) == {"s": "RUNNING"}
    assert shape({"input_transformer": {"input_template": '"<aws.events.rule-name>"'}}) == "example"
    assert shape({"input": None, "input_path": "$.id"}) == EVENT["id"]


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"input": 1, "input_path": "$"}, "input_path: set at most one of input, input_path"),
        (
            {"input_path": "$", "input_transformer": {"input_template": "x"}},
            "input_transformer: set at most one",
        ),
        ({"input_paths": "$"}, "input_paths: not an input setting"),
        ({"input": {1, 2}}, "Input: expected a JSON value"),
        ({"input": float("nan")}, "Input: expected a JSON value"),
        ({"input": "x" * 8200}, "Input: longer than 8192 characters"),
        ({"input_path": "detail"}, "InputPath: expected a JSONPath"),
        ({"input_transformer": "x"}, "InputTransformer: expected an object"),
        (
            {"input_transformer": {"input_template": "x", "extra": 1}},
            "InputTransformer.extra: not a",
        ),
        (
            {"input_transformer": {"input_paths_map": {}}},
            "InputTemplate: expected a non-empty string",
        ),
    ],
)
def test_invalid_target_inputs_name_the_field(config: dict[str, Any], fragment: str) -> None:
    with rejected(fragment):
        TargetInput.from_config(config)


def test_compiled_transformer_is_reusable() -> None:
    compiled = InputTransformer.compile({"state": "$.detail.state"}, '"<state>"')
    other = {**EVENT, "detail": {"state": "STOPPED"}}
    assert compiled.apply(EVENT, rule_name="r", rule_arn="a", ingestion_time="t") == "RUNNING"
    assert compiled.apply(other, rule_name="r", rule_arn="a", ingestion_time="t") == "STOPPED"
    assert compiled.apply("not an object", rule_name="r", rule_arn="a", ingestion_time="t") == ""
