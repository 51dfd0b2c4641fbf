"""httpx clients whose every connection is checked by an `OutboundPolicy`.

The check sits in the network backend, where httpcore opens a TCP connection: the host name is
resolved once, every answer is checked, and the socket goes to a checked address. The request
keeps its URL, so the Host header, TLS SNI and certificate verification all use the original
name, and pooled connections stay keyed by that name. Redirects are not followed, and proxies
from the environment are not used (they would hide the real destination).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from ssl import SSLContext
from typing import Any, TypeVar

import httpcore
import httpx

from jetbridge.ops.outbound.policy import OutboundPolicy

Stream = TypeVar("Stream")
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


def _unresolvable(host: str, exc: OSError) -> httpcore.ConnectError:
    return httpcore.ConnectError(f"cannot resolve {host}: {exc}")


class PinnedBackend(httpcore.NetworkBackend):
    """Connects only to addresses the policy admits, resolved once per connection."""

    def __init__(self, policy: OutboundPolicy, inner: httpcore.NetworkBackend | None = None):
        self._policy = policy
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self._policy.addresses(host, port)
        except OSError as exc:
            raise _unresolvable(host, exc) from None
        error: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("outbound HTTP does not use Unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class AsyncPinnedBackend(httpcore.AsyncNetworkBackend):
    """The asyncio form of `PinnedBackend`: the resolver runs in a worker thread."""

    def __init__(
        self, policy: OutboundPolicy, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        lookup = asyncio.to_thread(self._policy.addresses, host, port)
        try:
            addresses = await asyncio.wait_for(lookup, timeout)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise _unresolvable(host, exc) from None
        return await _first_connecting(
            addresses,
            lambda address: self._inner.connect_tcp(
                address, port, timeout, local_address, socket_options
            ),
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("outbound HTTP does not use Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def _first_connecting(
    addresses: list[str], connect: Callable[[str], Awaitable[Stream]]
) -> Stream:
    error: Exception | None = None
    for address in addresses:
        try:
            return await connect(address)
        except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
            error = exc
    assert error is not None
    raise error


class _Transport(httpx.HTTPTransport):
    def __init__(
        self, backend: httpcore.NetworkBackend, limits: httpx.Limits, ssl_context: SSLContext
    ) -> None:
        super().__init__(verify=ssl_context, limits=limits)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


class _AsyncTransport(httpx.AsyncHTTPTransport):
    def __init__(
        self, backend: httpcore.AsyncNetworkBackend, limits: httpx.Limits, ssl_context: SSLContext
    ) -> None:
        super().__init__(verify=ssl_context, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


def _options(timeout: float, headers: Mapping[str, str] | None, base_url: str) -> dict[str, Any]:
    return {
        "timeout": timeout,
        "headers": dict(headers or {}),
        "base_url": base_url,
        "follow_redirects": False,
        "trust_env": False,
    }


def sync_client(
    policy: OutboundPolicy,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    base_url: str = "",
    verify: SSLContext | None = None,
    backend: httpcore.NetworkBackend | None = None,
) -> httpx.Client:
    """A blocking client that refuses what `policy` refuses (`OutboundRefused`). `verify`
    replaces the system's trust store; `backend` the network below the policy."""
    context = verify or httpx.create_ssl_context()
    transport = _Transport(PinnedBackend(policy, backend), DEFAULT_LIMITS, context)
    return httpx.Client(transport=transport, **_options(timeout, headers, base_url))


def async_client(
    policy: OutboundPolicy,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    base_url: str = "",
    verify: SSLContext | None = None,
    backend: httpcore.AsyncNetworkBackend | None = None,
) -> httpx.AsyncClient:
    """An asyncio client that refuses what `policy` refuses (`OutboundRefused`). `verify`
    replaces the system's trust store; `backend` the network below the policy."""
    context = verify or httpx.create_ssl_context()
    transport = _AsyncTransport(AsyncPinnedBackend(policy, backend), DEFAULT_LIMITS, context)
    return httpx.AsyncClient(transport=transport, **_options(timeout, headers, base_url))
