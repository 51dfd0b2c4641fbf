"""The EventBridge pattern language: every operator, matched and not, against AWS's examples."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jetbridge.events import InvalidEventPattern
from jetbridge.events import test_event_pattern as match

EVENT: dict[str, Any] = {
    "version": "0",
    "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "111122223333",
    "time": "2017-12-22T18:43:48Z",
    "region": "us-west-1",
    "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
    "detail": {
        "instance-id": "i-1234567890abcdef0",
        "state": "terminated",
        "c-count": 5,
        "d-count": 3,
        "x-limit": 301.8,
        "source-ip": "10.0.0.123",
        "ipv6": "2001:db8:85a3::8a2e:370:7334",
        "empty": "",
        "nothing": None,
        "flag": True,
        "tags": ["prod", "blue"],
        "location": "eu-west-1b",
        "file": "report.PNG",
        "gate": {"id": "A12", "terminal": "1"},
        "crew": [{"role": "captain", "name": "Kim"}, {"role": "purser", "name": "Lee"}],
    },
}

CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("exact", {"source": ["aws.ec2"]}, True),
    ("exact list", {"source": ["aws.s3", "aws.ec2"]}, True),
    ("exact miss", {"source": ["aws.s3"]}, False),
    ("nested", {"detail": {"state": ["terminated"]}}, True),
    ("two fields", {"source": ["aws.ec2"], "detail": {"state": ["running"]}}, False),
    ("number", {"detail": {"c-count": [5]}}, True),
    ("number as float", {"detail": {"c-count": [5.0]}}, True),
    ("string never equals number", {"detail": {"c-count": ["5"]}}, False),
    ("boolean", {"detail": {"flag": [True]}}, True),
    ("boolean is not 1", {"detail": {"flag": [1]}}, False),
    ("null", {"detail": {"nothing": [None]}}, True),
    ("null does not match absent", {"detail": {"absent": [None]}}, False),
    ("empty string", {"detail": {"empty": [""]}}, True),
    ("empty string is not null", {"detail": {"nothing": [""]}}, False),
    ("event array any element", {"detail": {"tags": ["blue"]}}, True),
    ("event array none", {"detail": {"tags": ["green"]}}, False),
    ("resources array", {"resources": [{"prefix": "arn:aws:ec2:"}]}, True),
    ("prefix", {"detail": {"location": [{"prefix": "eu-"}]}}, True),
    ("prefix miss", {"detail": {"location": [{"prefix": "us-"}]}}, False),
    ("prefix is case sensitive", {"detail": {"location": [{"prefix": "EU-"}]}}, False),
    (
        "prefix ignore case",
        {"detail": {"location": [{"prefix": {"equals-ignore-case": "EU-"}}]}},
        True,
    ),
    ("prefix on number", {"detail": {"c-count": [{"prefix": "5"}]}}, False),
    ("suffix", {"detail": {"file": [{"suffix": ".PNG"}]}}, True),
    ("suffix miss", {"detail": {"file": [{"suffix": ".png"}]}}, False),
    (
        "suffix ignore case",
        {"detail": {"file": [{"suffix": {"equals-ignore-case": ".png"}}]}},
        True,
    ),
    ("equals-ignore-case", {"detail": {"state": [{"equals-ignore-case": "TERMINATED"}]}}, True),
    (
        "equals-ignore-case miss",
        {"detail": {"state": [{"equals-ignore-case": "TERMINATE"}]}},
        False,
    ),
    ("wildcard", {"detail": {"location": [{"wildcard": "eu-*-1*"}]}}, True),
    ("wildcard whole value", {"detail": {"location": [{"wildcard": "eu-*-1"}]}}, False),
    ("wildcard escaped star", {"detail": {"location": [{"wildcard": "eu\\*"}]}}, False),
    ("wildcard no star is exact", {"detail": {"location": [{"wildcard": "eu-west-1b"}]}}, True),
    ("anything-but value", {"detail": {"state": [{"anything-but": "initializing"}]}}, True),
    ("anything-but value miss", {"detail": {"state": [{"anything-but": "terminated"}]}}, False),
    (
        "anything-but list",
        {"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}},
        True,
    ),
    (
        "anything-but list miss",
        {"detail": {"state": [{"anything-but": ["terminated", "x"]}]}},
        False,
    ),
    ("anything-but numbers", {"detail": {"c-count": [{"anything-but": [1, 2, 3]}]}}, True),
    ("anything-but numbers miss", {"detail": {"c-count": [{"anything-but": [5]}]}}, False),
    ("anything-but needs the field", {"detail": {"absent": [{"anything-but": "x"}]}}, False),
    ("anything-but prefix", {"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}, True),
    (
        "anything-but prefix miss",
        {"detail": {"state": [{"anything-but": {"prefix": "term"}}]}},
        False,
    ),
    ("anything-but suffix", {"detail": {"file": [{"anything-but": {"suffix": ".txt"}}]}}, True),
    (
        "anything-but suffix miss",
        {"detail": {"file": [{"anything-but": {"suffix": ".PNG"}}]}},
        False,
    ),
    (
        "anything-but ignore case",
        {"detail": {"state": [{"anything-but": {"equals-ignore-case": ["TERMINATED"]}}]}},
        False,
    ),
    (
        "anything-but ignore case hit",
        {"detail": {"state": [{"anything-but": {"equals-ignore-case": "RUNNING"}}]}},
        True,
    ),
    (
        "anything-but wildcard",
        {"detail": {"location": [{"anything-but": {"wildcard": "us-*"}}]}},
        True,
    ),
    (
        "anything-but wildcard miss",
        {"detail": {"location": [{"anything-but": {"wildcard": "eu-*"}}]}},
        False,
    ),
    ("anything-but on array", {"detail": {"tags": [{"anything-but": "prod"}]}}, True),
    ("numeric >", {"detail": {"c-count": [{"numeric": [">", 0]}]}}, True),
    ("numeric range", {"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}]}}, True),
    ("numeric range miss", {"detail": {"c-count": [{"numeric": [">", 0, "<", 5]}]}}, False),
    ("numeric =", {"detail": {"x-limit": [{"numeric": ["=", 301.8]}]}}, True),
    ("numeric <", {"detail": {"d-count": [{"numeric": ["<", 10]}]}}, True),
    ("numeric >=", {"detail": {"d-count": [{"numeric": [">=", 3.0]}]}}, True),
    ("numeric on string", {"detail": {"state": [{"numeric": [">", 0]}]}}, False),
    ("exists true", {"detail": {"state": [{"exists": True}]}}, True),
    ("exists true absent", {"detail": {"absent": [{"exists": True}]}}, False),
    ("exists false absent", {"detail": {"absent": [{"exists": False}]}}, True),
    ("exists false present", {"detail": {"state": [{"exists": False}]}}, False),
    ("exists is for leaves", {"detail": {"gate": [{"exists": True}]}}, False),
    ("exists true on null", {"detail": {"nothing": [{"exists": True}]}}, True),
    ("cidr v4", {"detail": {"source-ip": [{"cidr": "10.0.0.0/24"}]}}, True),
    ("cidr v4 miss", {"detail": {"source-ip": [{"cidr": "10.0.1.0/24"}]}}, False),
    ("cidr v6", {"detail": {"ipv6": [{"cidr": "2001:db8::/32"}]}}, True),
    ("cidr v6 vs v4 value", {"detail": {"source-ip": [{"cidr": "2001:db8::/32"}]}}, False),
    (
        "$or",
        {"$or": [{"detail": {"c-count": [{"numeric": [">", 10]}]}}, {"detail": {"d-count": [3]}}]},
        True,
    ),
    ("$or miss", {"$or": [{"detail": {"c-count": [1]}}, {"detail": {"d-count": [1]}}]}, False),
    ("$or nested", {"detail": {"$or": [{"state": ["x"]}, {"gate": {"id": ["A12"]}}]}}, True),
    (
        "$or with other fields",
        {"source": ["aws.ec2"], "$or": [{"detail-type": ["x"]}, {"account": ["111122223333"]}]},
        True,
    ),
    ("mixed list", {"detail": {"state": ["running", {"prefix": "term"}]}}, True),
    ("nested object", {"detail": {"gate": {"id": ["A12"], "terminal": ["1"]}}}, True),
    ("dotted key", {"detail.gate.id": ["A12"]}, True),
    ("dotted key inside", {"detail": {"gate.terminal": ["1"]}}, True),
    (
        "array elements kept together",
        {"detail": {"crew": {"role": ["captain"], "name": ["Kim"]}}},
        True,
    ),
    (
        "array elements not mixed",
        {"detail": {"crew": {"role": ["captain"], "name": ["Lee"]}}},
        False,
    ),
    ("unknown top-level field", {"nope": ["x"]}, False),
]


@pytest.mark.parametrize(("name", "pattern", "expected"), CASES, ids=[c[0] for c in CASES])
def test_operator(name: str, pattern: dict[str, Any], expected: bool) -> None:
    assert match(pattern, EVENT) is expected
    assert match(json.dumps(pattern), json.dumps(EVENT)) is expected


INVALID: list[tuple[dict[str, Any] | str | list[Any], str]] = [
    ({"detail": {"state": "terminated"}}, "detail.state"),
    ({"source": []}, "source"),
    ({"source": [["a"]]}, "source"),
    ({"source": [{"prefix": 5}]}, "source.prefix"),
    ({"source": [{"prefix": {"other": "x"}}]}, "source.prefix"),
    ({"source": [{"bogus": "x"}]}, "bogus"),
    ({"source": [{"prefix": "a", "suffix": "b"}]}, "exactly one key"),
    ({"n": [{"numeric": [">", "5"]}]}, "n.numeric"),
    ({"n": [{"numeric": ["!", 5]}]}, "n.numeric"),
    ({"n": [{"numeric": ["<", 5, ">", 1]}]}, "lower bound"),
    ({"n": [{"numeric": [">", 5, "<", 1]}]}, "below the upper"),
    ({"n": [{"numeric": [">"]}]}, "n.numeric"),
    ({"e": [{"exists": "yes"}]}, "e.exists"),
    ({"ip": [{"cidr": "10.0.0.300/24"}]}, "ip.cidr"),
    ({"w": [{"wildcard": "a**b"}]}, "consecutive"),
    ({"a": [{"anything-but": []}]}, "a.anything-but"),
    ({"a": [{"anything-but": ["x", 1]}]}, "all strings or all numbers"),
    ({"a": [{"anything-but": {"numeric": [">", 1]}}]}, "a.anything-but"),
    ({"a": [{"anything-but": [None]}]}, "a.anything-but"),
    ({"$or": [{"a": [1]}]}, "$or"),
    ({"$or": "x"}, "$or"),
    ({"$or": [{"a": [1]}, {}]}, "$or[1]"),
    ({"detail": {}}, "detail"),
    ({}, "at least one field"),
    ([], "JSON object"),
    ("{not json", "not valid JSON"),
    ({"a": 5}, "a"),
    ({"n": [{"numeric": [[">"], 5]}]}, "n.numeric"),
    ({"n": [{"numeric": [{}, 5]}]}, "n.numeric"),
    ({"n": [10**400]}, "double's range"),
    ({"n": [{"numeric": [">", 10**400]}]}, "must be a number"),
    ({"a": [{"anything-but": {"numeric": [">", 1]}}]}, "does not support 'numeric'"),
    ({"a": [{"anything-but": {"prefix": ""}}]}, "a.anything-but.prefix: an empty prefix"),
    ({"a": [{"anything-but": {"suffix": ["x", ""]}}]}, "a.anything-but.suffix: an empty suffix"),
    ({"a": [{"anything-but": {"prefix": {"equals-ignore-case": "x"}}}]}, "a list of strings"),
    ({"a": [{"anything-but": {"wildcard": [1]}}]}, "a.anything-but.wildcard"),
    ({"a": [{"anything-but": {"wildcard": "a**"}}]}, "consecutive wildcard"),
    ({"w": [{"wildcard": "a\\b"}]}, "w.wildcard: a backslash may only escape"),
    ({"w": [{"wildcard": "a\\"}]}, "a backslash may only escape"),
    ({"w": [{"wildcard": "*a" * 21}]}, "more than 20 wildcards"),
    ({"a": [{"exactly": "x"}]}, "unrecognized match type 'exactly'"),
]


@pytest.mark.parametrize(
    ("pattern", "fragment"), INVALID, ids=[str(i) for i in range(len(INVALID))]
)
def test_invalid_patterns_name_the_path(pattern: Any, fragment: str) -> None:
    with pytest.raises(InvalidEventPattern) as caught:
        match(pattern, EVENT)
    assert fragment in str(caught.value)


def test_hostile_patterns_are_bounded() -> None:
    deep: dict[str, Any] = {"x": ["1"]}
    for _ in range(100):
        deep = {"a": deep}
    with pytest.raises(InvalidEventPattern, match="deeper"):
        match(deep, EVENT)
    with pytest.raises(InvalidEventPattern, match="more than"):
        match({"a": list(range(20_000))}, EVENT)
    explosion = {f"k{n}": {"$or": [{"a": [1]}, {"b": [2]}, {"c": [3]}]} for n in range(10)}
    with pytest.raises(InvalidEventPattern, match="combinations"):
        match(explosion, EVENT)


def test_bad_events_are_value_errors() -> None:
    with pytest.raises(ValueError, match="JSON"):
        match({"a": [1]}, "{nope")
    with pytest.raises(ValueError, match="object"):
        match({"a": [1]}, "[1]")


def test_integers_beyond_a_double_in_events_are_not_numbers() -> None:
    event = EVENT | {"detail": {"n": 10**400, "m": -(10**309)}}
    assert match({"detail": {"n": [{"numeric": [">", 0]}]}}, event) is False
    assert match({"detail": {"m": [{"numeric": ["<", 0]}]}}, event) is False
    assert match({"detail": {"n": [{"exists": True}]}}, event) is True
    assert match({"detail": {"n": [{"anything-but": [1, 2]}]}}, event) is True
