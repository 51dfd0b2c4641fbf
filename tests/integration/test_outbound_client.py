"""The outbound client over real sockets: refusals before any connection, the allow-list, one
checked resolution per connection (no DNS rebinding), TLS for the original name, no redirects."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest

from jetbridge.ops.outbound import OutboundPolicy, OutboundRefused, async_client, sync_client
from jetbridge.ops.outbound.policy import Resolver
from support import aio
from support.tls import https_receiver
from support.webhook import webhook_receiver

STRICT = OutboundPolicy()
ALLOW_HINT = "allow it with JETBRIDGE_OUTBOUND_ALLOW"


def post_sync(policy: OutboundPolicy, url: str, **options: Any) -> httpx.Response:
    with sync_client(policy, timeout=5, **options) as client:
        return client.post(url, content=b"{}")


def post_async(policy: OutboundPolicy, url: str, **options: Any) -> httpx.Response:
    async def run() -> httpx.Response:
        async with async_client(policy, timeout=5, **options) as client:
            return await client.post(url, content=b"{}")

    return aio.run(run())


POSTS = [pytest.param(post_sync, id="sync"), pytest.param(post_async, id="async")]
Post = Callable[..., httpx.Response]


def answering(*rounds: list[str]) -> tuple[list[str], Resolver]:
    """A resolver giving each round of answers in turn, as a rebinding DNS server would."""
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return rounds[min(len(asked), len(rounds)) - 1]

    return asked, resolve


@pytest.mark.parametrize("post", POSTS)
def test_loopback_receivers_get_nothing_from_a_client_without_allow_list(post: Post) -> None:
    with webhook_receiver() as v4, webhook_receiver("::1") as v6:
        cases = {
            f"http://127.0.0.1:{v4.port}/hook": "refused: 127.0.0.1 is a loopback address",
            f"http://[::1]:{v6.port}/hook": "refused: ::1 is a loopback address",
            f"http://[::ffff:127.0.0.1]:{v4.port}/hook": "embeds 127.0.0.1, a loopback address",
            f"http://localhost:{v4.port}/hook": "refused: localhost resolves to 127.0.0.1, which",
            f"http://127.1:{v4.port}/hook": "refused: 127.1 resolves to 127.0.0.1",
            f"http://2130706433:{v4.port}/hook": "refused: 2130706433 resolves to 127.0.0.1",
        }
        for url, reason in cases.items():
            with pytest.raises(OutboundRefused) as caught:
                post(STRICT, url)
            assert reason in str(caught.value), url
            assert str(caught.value).endswith(ALLOW_HINT)
        assert v4.requests == [] and v6.requests == []


@pytest.mark.parametrize("post", POSTS)
def test_internal_addresses_are_refused_without_trying_to_connect(post: Post) -> None:
    cases = {
        "http://10.0.0.5/hook": "10.0.0.5 is a private address",
        "http://169.254.169.254/latest/meta-data/": "the cloud metadata service",
        "http://100.64.0.1/": "carrier-grade NAT",
        "http://[fd00::1]/": "fd00::1 is a private address",
        "http://[fe80::1]/": "fe80::1 is a link-local address",
        "http://0.0.0.0:1/": "0.0.0.0 is an unspecified address",
        "http://[64:ff9b::a9fe:a9fe]/": "embeds 169.254.169.254",
    }
    for url, reason in cases.items():
        # A connection attempt would end in a connect error or a timeout, not a refusal.
        with pytest.raises(OutboundRefused, match=reason):
            post(STRICT, url)


@pytest.mark.parametrize("post", POSTS)
def test_the_allow_list_lets_exactly_the_named_receiver_through(post: Post) -> None:
    with webhook_receiver() as allowed, webhook_receiver() as other:
        policy = OutboundPolicy.from_setting(f"127.0.0.1:{allowed.port}")
        assert post(policy, allowed.url).status_code == 200
        with pytest.raises(OutboundRefused, match=r"127\.0\.0\.1 is a loopback address"):
            post(policy, other.url)
        assert len(allowed.requests) == 1
        assert other.requests == []


@pytest.mark.parametrize("post", POSTS)
def test_a_host_name_on_the_allow_list_reaches_whatever_it_resolves_to(post: Post) -> None:
    with webhook_receiver() as receiver:
        _, resolve = answering(["127.0.0.1"])
        policy = OutboundPolicy.from_setting("hooks.corp", resolve=resolve)
        assert post(policy, f"http://hooks.corp:{receiver.port}/hook").status_code == 200
        with pytest.raises(OutboundRefused):
            post(policy, f"http://other.corp:{receiver.port}/hook")
        assert len(receiver.requests) == 1


@pytest.mark.parametrize("post", POSTS)
def test_a_connection_goes_to_the_address_that_was_checked(post: Post) -> None:
    """A rebinding name answers an allowed address, then an internal one: the one lookup that was
    checked is the one connected to, and the Host header keeps the name."""
    with webhook_receiver() as receiver:
        asked, resolve = answering(["127.0.0.1"], ["10.0.0.5"])
        policy = OutboundPolicy.from_setting("127.0.0.1", resolve=resolve)
        url = f"http://rebind.test:{receiver.port}/hook"
        assert post(policy, url).status_code == 200
        assert asked == ["rebind.test"]
        assert receiver.requests[0][0]["host"] == f"rebind.test:{receiver.port}"
        with pytest.raises(OutboundRefused, match=r"rebind\.test resolves to 10\.0\.0\.5"):
            post(policy, url)
        assert asked == ["rebind.test", "rebind.test"]
        assert len(receiver.requests) == 1


class Recording(httpcore.NetworkBackend):
    """The network below the policy: records where it is asked to connect, then fails."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        self.connects.append((host, port))
        raise httpcore.ConnectError("recorded")


class AsyncRecording(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        raise httpcore.ConnectError("recorded")


def test_a_public_first_answer_is_the_address_connected_to() -> None:
    asked, resolve = answering(["93.184.215.14"], ["127.0.0.1"])
    policy = OutboundPolicy(resolve=resolve)
    backend = Recording()
    with (
        sync_client(policy, timeout=5, backend=backend) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get("http://rebind.test:8080/")
    assert backend.connects == [("93.184.215.14", 8080)]
    assert asked == ["rebind.test"]

    async def run() -> None:
        async with async_client(policy, timeout=5, backend=async_backend) as client:
            await client.get("http://rebind.test:8080/")

    async_backend = AsyncRecording()
    # The next connection looks up again: the resolver now answers 127.0.0.1, which is refused.
    with pytest.raises(OutboundRefused, match=r"resolves to 127\.0\.0\.1"):
        aio.run(run())
    assert async_backend.connects == []
    assert asked == ["rebind.test", "rebind.test"]


def test_each_answer_is_tried_in_order_after_all_are_checked() -> None:
    asked, resolve = answering(["93.184.215.14", "2606:4700::1111"])
    backend = Recording()
    policy = OutboundPolicy(resolve=resolve)
    with (
        sync_client(policy, timeout=5, backend=backend) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get("http://two.test/")
    assert backend.connects == [("93.184.215.14", 80), ("2606:4700::1111", 80)]
    assert asked == ["two.test"]


@pytest.mark.parametrize("post", POSTS)
def test_a_name_that_does_not_resolve_is_a_connect_error(post: Post) -> None:
    def resolve(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(httpx.ConnectError, match=r"cannot resolve nowhere\.test"):
        post(OutboundPolicy(resolve=resolve), "http://nowhere.test/")


@pytest.mark.parametrize("post", POSTS)
def test_tls_verifies_and_names_the_original_host_while_connecting_to_its_address(
    post: Post, tmp_path: Path
) -> None:
    with https_receiver(tmp_path, "pinned.test") as receiver:
        _, resolve = answering(["127.0.0.1"])
        policy = OutboundPolicy.from_setting("127.0.0.1", resolve=resolve)
        trust = ssl.create_default_context(cafile=receiver.ca_file)
        with sync_client(policy, timeout=5, verify=trust) as client:
            response = client.get(f"https://pinned.test:{receiver.port}/")
        assert response.status_code == 200
        assert receiver.server_names == ["pinned.test"]
        assert receiver.hosts == [f"pinned.test:{receiver.port}"]
        with pytest.raises(httpx.ConnectError, match=r"CERTIFICATE_VERIFY_FAILED|match"):
            post(policy, f"https://other.test:{receiver.port}/", verify=trust)
        assert receiver.hosts == [f"pinned.test:{receiver.port}"]


@pytest.mark.parametrize("post", POSTS)
def test_redirects_are_not_followed(post: Post) -> None:
    with webhook_receiver() as first, webhook_receiver() as second:
        first.statuses, first.location = [307], second.url
        response = post(OutboundPolicy.from_setting("127.0.0.1"), first.url)
        assert response.status_code == 307
        assert response.headers["location"] == second.url
        assert second.requests == []


class _Lookups:
    """A meta path finder that only notes which modules the import system searched for."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        self.names.append(name)


def test_requests_of_the_async_client_search_for_no_module() -> None:
    """httpcore asks which async library runs on every request; the answer must not cost a
    search of sys.path each time (a worker's event loop posts many webhooks a second)."""
    import sys

    lookups = _Lookups()
    with webhook_receiver() as receiver:
        policy = OutboundPolicy.from_setting(f"127.0.0.1:{receiver.port}")
        url = receiver.url

        async def run() -> list[int]:
            async with async_client(policy, timeout=5) as client:
                statuses = [(await client.post(url, content=b"{}")).status_code]
                sys.meta_path.insert(0, lookups)
                try:
                    for _ in range(3):
                        statuses.append((await client.post(url, content=b"{}")).status_code)
                finally:
                    sys.meta_path.remove(lookups)
                return statuses

        statuses = aio.run(run())
    assert all(status < 300 for status in statuses)
    assert lookups.names == []
