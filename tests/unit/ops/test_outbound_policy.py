"""Outbound policy: the address classifier, the allow-list, one checked resolution per
connection, and the write-time check of URLs given through the API."""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import ValidationError

from jetbridge.config import Settings
from jetbridge.ops.outbound import (
    InvalidAllowList,
    InvalidURL,
    OutboundPolicy,
    OutboundRefused,
    classify,
    parse_allow_list,
)
from jetbridge.ops.outbound.policy import AllowRule, Resolver

INTERNAL = [
    ("127.0.0.1", "is a loopback address"),
    ("127.255.0.9", "is a loopback address"),
    ("::1", "is a loopback address"),
    ("0.0.0.0", "is an unspecified address"),
    ("::", "is an unspecified address"),
    ("10.0.0.5", "is a private address"),
    ("172.16.0.1", "is a private address"),
    ("172.31.255.255", "is a private address"),
    ("192.168.1.1", "is a private address"),
    ("fc00::1", "is a private address"),
    ("fd12:3456::1", "is a private address"),
    ("169.254.169.254", "is a link-local address (the cloud metadata service)"),
    ("169.254.0.1", "is a link-local address"),
    ("fe80::1", "is a link-local address"),
    ("febf::1", "is a link-local address"),
    ("fe80::1%eth0", "is a link-local address"),
    ("100.64.0.1", "is a shared carrier-grade NAT address (100.64.0.0/10)"),
    ("100.127.255.254", "is a shared carrier-grade NAT address (100.64.0.0/10)"),
    ("224.0.0.1", "is a multicast address"),
    ("239.255.255.250", "is a multicast address"),
    ("ff02::1", "is a multicast address"),
    ("240.0.0.1", "is a reserved address"),
    ("255.255.255.255", "is a reserved address"),
    ("fec0::1", "is a site-local address"),
    ("0.1.2.3", "is a special-purpose address"),
    ("192.0.2.10", "is a special-purpose address"),
    ("198.18.0.1", "is a special-purpose address"),
    ("2001:db8::1", "is a special-purpose address"),
    ("::ffff:127.0.0.1", "embeds 127.0.0.1, a loopback address"),
    ("::ffff:10.0.0.5", "embeds 10.0.0.5, a private address"),
    ("::ffff:169.254.169.254", "embeds 169.254.169.254, a link-local address"),
    ("::127.0.0.1", "embeds 127.0.0.1, a loopback address"),
    ("2002:7f00:1::", "embeds 127.0.0.1, a loopback address"),
    ("2002:a9fe:a9fe::1", "embeds 169.254.169.254, a link-local address"),
    ("64:ff9b::a00:5", "embeds 10.0.0.5, a private address"),
    ("64:ff9b::7f00:1", "embeds 127.0.0.1, a loopback address"),
    ("64:ff9b:1::1", "is a reserved address"),
    ("::8.8.8.8", "is a reserved address"),
]
PUBLIC = [
    "8.8.8.8",
    "93.184.215.14",
    "100.63.255.255",
    "100.128.0.1",
    "172.15.255.255",
    "172.32.0.1",
    "2606:4700::1111",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]


@pytest.mark.parametrize(("text", "reason"), INTERNAL)
def test_internal_addresses_are_named_with_their_reason(text: str, reason: str) -> None:
    found = classify(ipaddress.ip_address(text))
    assert found is not None
    assert found.describe().split(" ", 1)[1].startswith(reason)


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_are_reachable(text: str) -> None:
    assert classify(ipaddress.ip_address(text)) is None


def test_the_allow_list_reads_cidrs_addresses_names_and_ports() -> None:
    rules = parse_allow_list(
        " 10.0.0.0/8, payments.internal:8443,[fd00::1]:443 ,::1,127.0.0.1:8080,Hooks.Corp., "
    )
    assert rules == (
        AllowRule(network=ipaddress.ip_network("10.0.0.0/8")),
        AllowRule(host="payments.internal", port=8443),
        AllowRule(network=ipaddress.ip_network("fd00::1/128"), port=443),
        AllowRule(network=ipaddress.ip_network("::1/128")),
        AllowRule(network=ipaddress.ip_network("127.0.0.1/32"), port=8080),
        AllowRule(host="hooks.corp"),
    )
    assert parse_allow_list("") == ()


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("foo bar", "'foo bar' is not a CIDR"),
        ("10.0.0.0/33", "'10.0.0.0/33' is not a CIDR"),
        ("[::1]:x", "'[::1]:x' has no valid port"),
        ("[::1", "'[::1' is not a CIDR"),
        ("[payments.internal]", "'[payments.internal]' is not a CIDR"),
        ("host:0", "'host:0' has no valid port"),
        ("host:65536", "'host:65536' has no valid port"),
        ("host:", "'host:' has no valid port"),
        ("-bad-.example", "is not a CIDR"),
        ("a" * 300, "is not a CIDR"),
        ("hooks/*", "'hooks/*' is not a CIDR"),
    ],
)
def test_bad_allow_list_entries_are_named(text: str, complaint: str) -> None:
    with pytest.raises(InvalidAllowList, match="JETBRIDGE_OUTBOUND_ALLOW") as caught:
        parse_allow_list(f"10.0.0.0/8,{text}")
    assert complaint in str(caught.value)


def test_settings_refuse_a_bad_allow_list_naming_the_setting() -> None:
    with pytest.raises(ValidationError, match="JETBRIDGE_OUTBOUND_ALLOW: 'nope nope'"):
        Settings(outbound_allow="10.0.0.0/8,nope nope")


def test_settings_in_the_tests_allow_loopback_from_the_environment(outbound_allow: str) -> None:
    assert Settings().outbound_allow == outbound_allow
    Settings().outbound_policy().check_url("http://127.0.0.1:9/hook")
    with pytest.raises(OutboundRefused):
        Settings(outbound_allow="").outbound_policy().check_url("http://127.0.0.1:9/hook")


def answering(*rounds: list[str]) -> tuple[list[str], Resolver]:
    """A resolver giving each round of answers in turn (the last one again after that)."""
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return rounds[min(len(asked), len(rounds)) - 1]

    return asked, resolve


def test_a_name_resolving_to_an_internal_address_is_refused_naming_both() -> None:
    asked, resolve = answering(["93.184.215.14", "10.0.0.5"])
    policy = OutboundPolicy(resolve=resolve)
    with pytest.raises(OutboundRefused) as caught:
        policy.addresses("hooks.example.com", 443)
    assert str(caught.value) == (
        "refused: hooks.example.com resolves to 10.0.0.5, which is a private address; "
        "allow it with JETBRIDGE_OUTBOUND_ALLOW"
    )
    assert caught.value.describe(with_host=False) == (
        "refused: 10.0.0.5 is a private address; allow it with JETBRIDGE_OUTBOUND_ALLOW"
    )
    assert asked == ["hooks.example.com"]


def test_addresses_are_resolved_once_and_returned_for_connecting() -> None:
    asked, resolve = answering(["93.184.215.14"], ["127.0.0.1"])
    policy = OutboundPolicy(resolve=resolve)
    assert policy.addresses("Hooks.Example.COM.", 443) == ["93.184.215.14"]
    assert asked == ["hooks.example.com"]


def test_literal_addresses_are_not_resolved() -> None:
    asked, resolve = answering(["93.184.215.14"])
    policy = OutboundPolicy(resolve=resolve)
    with pytest.raises(OutboundRefused, match="::1 is a loopback address"):
        policy.addresses("::1", 80)
    assert policy.addresses("8.8.8.8", 80) == ["8.8.8.8"]
    assert asked == []


def test_a_name_that_resolves_to_nothing_or_garbage_is_an_os_error() -> None:
    for answers in ([], ["not-an-address"]):
        _, resolve = answering(answers)
        with pytest.raises(OSError):
            OutboundPolicy(resolve=resolve).addresses("x.example", 80)
    for port in (0, 65536, 99999):
        with pytest.raises(OSError, match="out of range"):
            OutboundPolicy().addresses("8.8.8.8", port)


def test_the_allow_list_admits_networks_names_and_ports_and_nothing_more() -> None:
    _, resolve = answering(["10.1.2.3"])
    policy = OutboundPolicy.from_setting(
        "10.1.0.0/16:8443,payments.internal,127.0.0.1", resolve=resolve
    )
    assert policy.addresses("10.1.2.3", 8443) == ["10.1.2.3"]
    assert policy.addresses("gateway.corp", 8443) == ["10.1.2.3"]
    assert policy.addresses("payments.internal", 1234) == ["10.1.2.3"]
    assert policy.addresses("::ffff:127.0.0.1", 80) == ["::ffff:7f00:1"]
    for host, port in (("10.1.2.3", 443), ("10.2.0.1", 8443), ("gateway.corp", 80)):
        with pytest.raises(OutboundRefused, match="private address"):
            policy.addresses(host, port)
    with pytest.raises(OutboundRefused, match="loopback"):
        policy.addresses("127.0.0.2", 80)


def test_every_answer_must_pass_not_just_the_first() -> None:
    _, resolve = answering(["93.184.215.14", "169.254.169.254"])
    with pytest.raises(OutboundRefused, match="cloud metadata"):
        OutboundPolicy(resolve=resolve).addresses("mixed.example", 80)


def test_an_operators_origin_is_allowed_exactly() -> None:
    _, resolve = answering(["10.9.9.9"])
    base = OutboundPolicy(resolve=resolve)
    payments = base.allowing_origin("http://127.0.0.1:8080/test-payments")
    assert payments.addresses("127.0.0.1", 8080) == ["127.0.0.1"]
    for host, port in (("127.0.0.1", 8081), ("127.0.0.2", 8080)):
        with pytest.raises(OutboundRefused):
            payments.addresses(host, port)
    named = base.allowing_origin("https://pay.corp/v1")
    assert named.addresses("pay.corp", 443) == ["10.9.9.9"]
    with pytest.raises(OutboundRefused):
        named.addresses("pay.corp", 80)
    with pytest.raises(OutboundRefused):
        base.addresses("127.0.0.1", 8080)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://10.0.0.5/hook", "refused: 10.0.0.5 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "refused: 169.254.169.254 is a link-local"),
        ("http://[::1]:8080/", "refused: ::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/", "embeds 127.0.0.1, a loopback address"),
        ("http://[fe80::1%25eth0]/", "is a link-local address"),
        ("https://localhost/", "refused: localhost resolves to 127.0.0.1"),
        ("https://LOCALHOST./", "refused: localhost. resolves to 127.0.0.1"),
        ("http://api.localhost/", "refused: api.localhost resolves to 127.0.0.1"),
        ("http://127.1/", "refused: 127.1 resolves to 127.0.0.1"),
        ("http://2130706433/", "refused: 2130706433 resolves to 127.0.0.1"),
        ("http://0x7f.0.0.1/", "refused: 0x7f.0.0.1 resolves to 127.0.0.1"),
        ("http://0/", "refused: 0 resolves to 0.0.0.0, which is an unspecified address"),
        ("http://user:pw@10.0.0.5/", "refused: 10.0.0.5 is a private address"),
    ],
)
def test_urls_naming_internal_addresses_are_refused_at_write_time(url: str, message: str) -> None:
    with pytest.raises(OutboundRefused, match="allow it with JETBRIDGE_OUTBOUND_ALLOW") as caught:
        OutboundPolicy().check_url(url)
    assert message in str(caught.value)


def test_write_time_checks_do_not_resolve_names_and_respect_the_allow_list() -> None:
    asked, resolve = answering(["10.0.0.5"])
    policy = OutboundPolicy(resolve=resolve)
    policy.check_url("https://hooks.example.com/flights")
    policy.check_url("http://10.0.0.5@hooks.example.com/")
    assert asked == []
    allowing = OutboundPolicy.from_setting("10.0.0.0/8,localhost:8080")
    allowing.check_url("http://10.0.0.5/hook")
    allowing.check_url("http://localhost:8080/hook")
    with pytest.raises(OutboundRefused):
        allowing.check_url("http://localhost:8081/hook")


@pytest.mark.parametrize(
    "url",
    ["http://[zz]/", "http://[::1/", "http://host:99999/", "ftp://example.com/", "http:///x", ""],
)
def test_malformed_urls_are_invalid_at_write_time(url: str) -> None:
    with pytest.raises(InvalidURL):
        OutboundPolicy().check_url(url)
