"""Outbound HTTP: one client layer that never reaches internal addresses unless allow-listed."""

from jetbridge.ops.outbound.addresses import Internal, classify
from jetbridge.ops.outbound.client import async_client, sync_client
from jetbridge.ops.outbound.policy import (
    SETTING,
    InvalidAllowList,
    InvalidURL,
    OutboundPolicy,
    OutboundRefused,
    parse_allow_list,
)

__all__ = [
    "SETTING",
    "Internal",
    "InvalidAllowList",
    "InvalidURL",
    "OutboundPolicy",
    "OutboundRefused",
    "async_client",
    "classify",
    "parse_allow_list",
    "sync_client",
]
