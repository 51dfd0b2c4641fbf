"""The outbound policy: the operator's allow-list, and the one name resolution per connection
whose answers are checked and then connected to (so a second lookup cannot change them)."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import httpx

from jetbridge.ops.outbound.addresses import Internal, IPAddress, classify, parse_address

SETTING = "JETBRIDGE_OUTBOUND_ALLOW"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Resolves a host name and port to IP address texts, in the order to try them.
Resolver = Callable[[str, int], Sequence[str]]
_HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_-]+$")
_LOCAL_NAMES = ("localhost", "localhost.localdomain")


class OutboundRefused(Exception):
    """Outbound HTTP would reach an internal address the allow-list does not admit."""

    def __init__(self, host: str, internal: Internal) -> None:
        self.host = host
        self.internal = internal
        super().__init__(self.describe(with_host=True))

    def describe(self, *, with_host: bool) -> str:
        """The reason; without the host name when that name may be personal data."""
        named = with_host and parse_address(self.host) is None
        where = (
            f"{self.host} resolves to {self.internal.address}, which is {self.internal.reason}"
            if named
            else self.internal.describe()
        )
        return f"refused: {where}; allow it with {SETTING}"


class InvalidURL(ValueError):
    """A URL the outbound client cannot parse, or one without a host."""


def parse_url(url: str) -> httpx.URL:
    """`url` parsed exactly as the outbound client will parse it when it connects."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InvalidURL(f"not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidURL("expected an http:// or https:// URL with a host")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise InvalidURL(f"port {parsed.port} is out of range (1 to 65535)")
    return parsed


def default_port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


class InvalidAllowList(ValueError):
    """An entry of JETBRIDGE_OUTBOUND_ALLOW is neither a CIDR, an address nor a host name."""


@dataclass(frozen=True, slots=True)
class AllowRule:
    """One allow-list entry: a network or an exact host name, on one port or on all."""

    network: Network | None = None
    host: str | None = None
    port: int | None = None

    def admits_name(self, host: str, port: int) -> bool:
        return self.host is not None and self.host == host and self.port in (None, port)

    def admits_address(self, address: IPAddress, port: int) -> bool:
        if self.network is None or self.port not in (None, port):
            return False
        internal = classify(address)
        embedded = internal.embedded if internal is not None else None
        return address in self.network or (embedded is not None and embedded in self.network)


def parse_allow_list(text: str) -> tuple[AllowRule, ...]:
    """Comma-separated CIDRs, addresses or host names, each optionally with `:port`
    (IPv6 with a port in brackets: `[fd00::1]:8443`)."""
    return tuple(_parse_entry(entry.strip()) for entry in text.split(",") if entry.strip())


def _parse_entry(entry: str) -> AllowRule:
    network = _network(entry)
    if network is not None:
        return AllowRule(network=network)
    host, port = entry, None
    if entry.startswith("["):
        host, closed, rest = entry[1:].partition("]")
        if not closed:
            host = entry
        port = _port(entry, rest.removeprefix(":")) if rest else None
    elif ":" in entry:
        host, _, text = entry.rpartition(":")
        port = _port(entry, text)
    network = _network(host)
    if network is not None:
        return AllowRule(network=network, port=port)
    name = normalise_host(host)
    if entry.startswith("[") or not _HOST_NAME.match(name):
        raise InvalidAllowList(
            f"{SETTING}: {entry!r} is not a CIDR, an IP address or a host name (optionally :port)"
        )
    return AllowRule(host=name, port=port)


def _network(text: str) -> Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _port(entry: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InvalidAllowList(f"{SETTING}: {entry!r} has no valid port after ':' (1 to 65535)")
    return int(text)


def normalise_host(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host`, in its order, once each."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """Public addresses are always reachable; internal ones only through the allow-list."""

    allow: tuple[AllowRule, ...] = ()
    resolve: Resolver = field(default=system_resolve, compare=False)

    @classmethod
    def from_setting(cls, text: str, *, resolve: Resolver = system_resolve) -> OutboundPolicy:
        return cls(parse_allow_list(text), resolve)

    def allowing_origin(self, url: str) -> OutboundPolicy:
        """This policy plus exactly the scheme's host and port of `url` (an operator's URL)."""
        parsed = parse_url(url)
        port = default_port(parsed)
        address = parse_address(parsed.host)
        rule = (
            AllowRule(network=ipaddress.ip_network(address), port=port)
            if address is not None
            else AllowRule(host=normalise_host(parsed.host), port=port)
        )
        return replace(self, allow=(*self.allow, rule))

    def addresses(self, host: str, port: int) -> list[str]:
        """Resolve `host` once and return the addresses to connect to; raise `OutboundRefused`
        if any of them is internal and not allow-listed, `OSError` if it does not resolve."""
        if not 0 < port < 65536:
            raise OSError(f"port {port} is out of range")
        name = normalise_host(host)
        literal = parse_address(name)
        answers = [str(literal)] if literal is not None else list(self.resolve(name, port))
        if not answers:
            raise OSError(f"{host} resolved to no address")
        if literal is None and any(rule.admits_name(name, port) for rule in self.allow):
            return answers
        for text in answers:
            address = parse_address(text)
            if address is None:
                raise OSError(f"{host} resolved to {text!r}, which is not an IP address")
            self._check(host, address, port)
        return answers

    def _check(self, host: str, address: IPAddress, port: int) -> None:
        internal = classify(address)
        if internal is None or any(rule.admits_address(address, port) for rule in self.allow):
            return
        raise OutboundRefused(host, internal)

    def check_url(self, url: str) -> None:
        """At write time: refuse a URL whose host is an internal literal address or a local
        name. Names that resolve to internal addresses are refused when connecting."""
        parsed = parse_url(url)
        port = default_port(parsed)
        name = normalise_host(parsed.host)
        address = parse_address(name) or _numeric_ipv4(name)
        if address is None and (name in _LOCAL_NAMES or name.endswith(".localhost")):
            if any(rule.admits_name(name, port) for rule in self.allow):
                return
            address = ipaddress.IPv4Address("127.0.0.1")
        if address is not None:
            self._check(parsed.host, address, port)


def _numeric_ipv4(name: str) -> IPAddress | None:
    """Shorthand IPv4 forms the system resolver accepts (`127.1`, `0x7f.1`, `2130706433`)."""
    try:
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except (OSError, ValueError):
        return None
