"""Which IP addresses outbound HTTP may reach: everything public, nothing internal.

Internal means loopback, link-local (the cloud metadata service included), private (RFC 1918,
fc00::/7), shared carrier-grade NAT space, unspecified, multicast, reserved or any other
special-purpose range, and the IPv6 forms that carry such an IPv4 address inside them
(IPv4-mapped, IPv4-compatible, 6to4, NAT64, Teredo).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA = ipaddress.IPv4Address("169.254.169.254")
SHARED = ipaddress.IPv4Network("100.64.0.0/10")
PRIVATE = (
    ipaddress.IPv4Network("10.0.0.0/8"),
    ipaddress.IPv4Network("172.16.0.0/12"),
    ipaddress.IPv4Network("192.168.0.0/16"),
    ipaddress.IPv6Network("fc00::/7"),
)
SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Forms whose embedded IPv4 address is where the packets really go: judged by that address alone.
TRANSPARENT = (ipaddress.IPv6Network("::ffff:0:0/96"), NAT64)


@dataclass(frozen=True, slots=True)
class Internal:
    """Why an address is internal; `embedded` is the IPv4 address an IPv6 form carries."""

    address: IPAddress
    reason: str
    embedded: ipaddress.IPv4Address | None = None

    def describe(self) -> str:
        if self.embedded is not None:
            return f"{self.address} embeds {self.embedded}, {self.reason}"
        return f"{self.address} is {self.reason}"


def parse_address(text: str) -> IPAddress | None:
    """The address written in `text` (IPv6 with or without a zone or brackets), else None."""
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def classify(address: IPAddress) -> Internal | None:
    """None for a public address; otherwise why outbound HTTP must not go there."""
    embedded = embedded_ipv4(address)
    if embedded is not None:
        inner = _reason(embedded)
        if inner is not None:
            return Internal(address, inner, embedded)
        if any(address in network for network in TRANSPARENT):
            return None
    reason = _reason(address)
    return None if reason is None else Internal(address, reason)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, IPv4-compatible, 6to4, NAT64 or Teredo address."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in NAT64 or (address in IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _reason(address: IPAddress) -> str | None:
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address == METADATA:
        return "a link-local address (the cloud metadata service)"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in SHARED:
        return "a shared carrier-grade NAT address (100.64.0.0/10)"
    if any(address in network for network in PRIVATE):
        return "a private address"
    if address in SITE_LOCAL:
        return "a site-local address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "a special-purpose address"
    return None
