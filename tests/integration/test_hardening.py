"""HTTP hardening: security headers, CORS, rate limits per client address, trusted proxies, and
event streams that keep working under the limits."""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from jetbridge.app import create_app
from jetbridge.config import Settings
from support.auth import as_operator
from support.servers import free_port, serve_app

PAGES = ["/", "/book", "/trips", "/fids/ZRH"]


def app_with(sqlite_url: str, **settings: Any) -> Any:
    return create_app(Settings(database_url=sqlite_url, run_workers=False, **settings))


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    with TestClient(app_with(sqlite_url), raise_server_exceptions=False) as c:
        as_operator(c)
        yield c


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


def sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_pages_get_a_policy_allowing_exactly_their_inline_code(client: TestClient) -> None:
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 200
        policy = directives(response.headers["content-security-policy"])
        assert policy["default-src"] == ["'none'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert policy["connect-src"] == ["'self'"]
        assert "'unsafe-inline'" not in policy["script-src"] + policy["style-src"]
        html = response.text
        for body in re.findall(r"<script>(.*?)</script>", html, re.S):
            assert sha256(body) in policy["script-src"], path
        for body in re.findall(r"<style>(.*?)</style>", html, re.S):
            assert sha256(body) in policy["style-src"], path
        # what a hash cannot allow: inline handlers, style attributes, scripts from elsewhere
        assert not re.search(r"<[^>]+\s(on[a-z]+|style)\s*=", html), path
        assert not re.search(r"<script[^>]+src=", html), path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cross-origin-opener-policy"] == "same-origin"
        assert "strict-transport-security" not in response.headers  # plain http


def test_api_responses_get_headers_and_no_store(client: TestClient) -> None:
    for path, status in [
        ("/api/buses", 200),
        ("/api/bookings/nope", 404),
        ("/api/customers/c1/bookings", 200),
        ("/api/auth/nothing-here", 404),
    ]:
        response = client.get(path)
        assert response.status_code == status, path
        assert response.headers["content-security-policy"] == (
            "default-src 'none'; frame-ancestors 'none'"
        )
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "cache-control" not in client.get("/book").headers
    docs = client.get("/docs")
    # The documentation pages' scripts are the platform's own: no other origin is allowed.
    assert directives(docs.headers["content-security-policy"])["script-src"] == [
        "'self'",
        "'unsafe-inline'",
    ]


def test_strict_transport_security_only_over_https_unless_configured(sqlite_url: str) -> None:
    def hsts(setting: str, base: str) -> str | None:
        with TestClient(app_with(sqlite_url, hsts=setting), base_url=base) as c:
            return c.get("/api/flights/schema").headers.get("strict-transport-security")

    assert hsts("auto", "https://testserver") == "max-age=31536000"
    assert hsts("auto", "http://testserver") is None
    assert hsts("always", "http://testserver") == "max-age=31536000"
    assert hsts("off", "https://testserver") is None


def preflight(client: TestClient, origin: str) -> httpx.Response:
    return client.options(
        "/api/bookings",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,idempotency-key",
        },
    )


def test_cors_is_closed_by_default(client: TestClient) -> None:
    response = preflight(client, "https://app.example")
    assert "access-control-allow-origin" not in response.headers
    simple = client.get("/api/buses", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in simple.headers


def test_cors_allows_listed_origins_only(sqlite_url: str) -> None:
    app = app_with(sqlite_url, cors_origins="https://app.example, http://localhost:5173")
    with TestClient(app) as client:
        allowed = preflight(client, "https://app.example")
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert "POST" in allowed.headers["access-control-allow-methods"]
        assert "access-control-allow-credentials" not in allowed.headers
        for origin in ["https://evil.example", "https://app.example.evil", "null"]:
            refused = preflight(client, origin)
            assert "access-control-allow-origin" not in refused.headers, origin
            assert refused.status_code == 400
        simple = client.get("/api/buses", headers={"Origin": "http://localhost:5173"})
        assert simple.headers["access-control-allow-origin"] == "http://localhost:5173"
        other = client.get("/api/buses", headers={"Origin": "http://localhost:5174"})
        assert "access-control-allow-origin" not in other.headers


def test_sign_in_limit_trips_at_n_plus_one_per_address(sqlite_url: str) -> None:
    app = app_with(sqlite_url, rate_limit_login="3/minute", rate_limit_public="1000/minute")
    with TestClient(app, client=("198.51.100.7", 4000)) as first:
        for _ in range(3):
            assert first.post("/api/auth/token", json={}).status_code != 429
        refused = first.post("/api/auth/token", json={})
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.json()["error"] == "TooManyRequests"
        assert "sign-in" in refused.json()["message"]
        assert refused.headers["x-content-type-options"] == "nosniff"
        assert first.post("/login", data={}).status_code == 429  # the same limit
        assert first.get("/api/auth/me").status_code != 429  # reading is not signing in
        assert first.post("/loginx").status_code != 429
        assert first.post("/api/buses", json={}).status_code != 429
    other = TestClient(app, client=("198.51.100.8", 4000))
    assert other.post("/api/auth/token", json={}).status_code != 429


def test_public_limit_trips_and_ipv6_counts_per_64(sqlite_url: str) -> None:
    app = app_with(sqlite_url, rate_limit_public="4/minute")

    def statuses(host: str, count: int) -> list[int]:
        c = TestClient(app, client=(host, 1234))
        return [c.get("/api/flights/schema").status_code for _ in range(count)]

    with TestClient(app):
        assert statuses("203.0.113.1", 5) == [200, 200, 200, 200, 429]
        assert statuses("2001:db8:1:2::1", 2) == [200, 200]
        assert statuses("2001:db8:1:2:ffff::9", 3) == [200, 200, 429]  # the same /64
        assert statuses("2001:db8:1:3::1", 1) == [200]
        assert statuses("::ffff:203.0.113.1", 1) == [429]  # the IPv4 client again


def test_forwarded_for_counts_only_behind_trusted_proxies(sqlite_url: str) -> None:
    settings = {"rate_limit_login": "2/minute", "rate_limit_public": "1000/minute"}
    trusting = app_with(sqlite_url, trusted_proxies="10.0.0.0/8", **settings)
    with TestClient(trusting, client=("10.1.2.3", 1)) as proxy:

        def sign_in(client_address: str) -> int:
            headers = {"X-Forwarded-For": client_address}
            return proxy.post("/api/auth/token", headers=headers).status_code

        assert [sign_in("192.0.2.10") for _ in range(3)][-1] == 429
        assert sign_in("192.0.2.11") != 429
        # a client cannot pick its address by writing one in front of the proxy's
        assert sign_in("192.0.2.11, 192.0.2.10") == 429
    untrusting = app_with(sqlite_url.replace(".db", "-2.db"), **settings)
    with TestClient(untrusting, client=("192.0.2.50", 1)) as direct:
        codes = [
            direct.post("/api/auth/token", headers={"X-Forwarded-For": f"192.0.2.{n}"})
            for n in range(3)
        ]
        assert codes[-1].status_code == 429


def test_limits_off_for_benchmarks(sqlite_url: str) -> None:
    app = app_with(sqlite_url, rate_limit_login="off", rate_limit_public="")
    with TestClient(app) as c:
        assert all(c.post("/api/auth/token").status_code != 429 for _ in range(30))


def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not check():
        time.sleep(0.02)
    assert check()


class Stream(threading.Thread):
    """An SSE client holding its stream open until told to leave."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.status = 0
        self.opened = threading.Event()
        self.leave = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=30) as http, http.stream("GET", self.url) as response:
            self.status = response.status_code
            lines = response.iter_lines()  # kept: dropping it would close the connection
            if response.status_code == 200:
                next(lines)  # the stream's first line: it is live
            self.opened.set()
            self.leave.wait(30)


def test_streams_are_exempt_from_rates_but_capped_per_address(sqlite_url: str) -> None:
    app = app_with(sqlite_url, rate_limit_public="3/minute", stream_connections_per_client=3)
    with serve_app(app) as base:
        url = f"{base}/api/fids/ZRH/departures/stream"
        for _ in range(3):  # the request rate is used up
            httpx.get(f"{base}/api/flights/schema", timeout=5)
        assert httpx.get(f"{base}/api/flights/schema", timeout=5).status_code == 429
        streams = [Stream(url) for _ in range(3)]
        for stream in streams:
            stream.start()
            assert stream.opened.wait(10) and stream.status == 200
        refused = httpx.get(url, timeout=5)
        assert refused.status_code == 429 and "open event streams" in refused.json()["message"]
        assert refused.headers["retry-after"]
        streams[0].leave.set()
        streams[0].join(10)

        def reopened() -> bool:
            again = Stream(url)
            again.start()
            again.opened.wait(10)
            again.leave.set()
            return again.status == 200

        until(reopened)  # the closed stream's place is free again
        for _ in range(10):  # screens reconnecting many times are not a request rate
            assert reopened()
        for stream in streams:
            stream.leave.set()


def test_limits_are_shared_through_redis(sqlite_url: str, redis_url: str) -> None:
    settings = {"redis_url": redis_url, "rate_limit_login": "2/minute"}
    address = f"198.18.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    first = app_with(sqlite_url, **settings)
    second = app_with(sqlite_url.replace(".db", "-2.db"), **settings)
    with TestClient(first, client=(address, 1)) as a, TestClient(second, client=(address, 1)) as b:
        assert a.post("/api/auth/token").status_code != 429
        assert b.post("/api/auth/token").status_code != 429
        assert a.post("/api/auth/token").status_code == 429
        assert b.post("/api/auth/token").status_code == 429


def test_limits_fail_open_when_their_store_is_down(sqlite_url: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = app_with(sqlite_url, redis_url=dead, rate_limit_login="1/minute")
    with TestClient(app, raise_server_exceptions=False) as c:
        codes = [c.post("/api/auth/token").status_code for _ in range(3)]
    assert 429 not in codes and 500 not in codes


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"rate_limit_login": "10 every minute"}, "rate_limit_login"),
        ({"rate_limit_public": "ten/minute"}, "rate_limit_public"),
        ({"trusted_proxies": "10.0.0.0/8, proxy.local"}, "JETBRIDGE_TRUSTED_PROXIES"),
        ({"cors_origins": "*"}, "JETBRIDGE_CORS_ORIGINS"),
        ({"cors_origins": "https://app.example/path"}, "JETBRIDGE_CORS_ORIGINS"),
        ({"hsts": "sometimes"}, "hsts"),
        ({"stream_connections_per_client": -1}, "stream_connections_per_client"),
    ],
)
def test_bad_hardening_settings_are_refused_at_start(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**settings)
    assert named in str(caught.value)
