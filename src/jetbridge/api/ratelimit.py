"""Rate limits per client address: a strict one on sign-in requests, a broad one on everything,
and a cap on open event streams instead of a request rate for them.

Event streams (SSE) are long-lived, and an airport may have thousands of screens behind one
address: counting their requests would cut off whole terminals when they reconnect together after
a restart. So streams are exempt from request rates; what is limited is how many streams one
address holds open at once in this process.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import StorageError
from starlette.types import ASGIApp, Receive, Scope, Send

from jetbridge.api.errors import error_body
from jetbridge.config import Settings, setting_items

log = logging.getLogger(__name__)

STREAM_PATHS = re.compile(r"/api/(?:buses/[^/]+|fids/[^/]+/[^/]+)/stream")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def parse_rate(text: str) -> tuple[RateLimitItem, ...]:
    """`10/minute` or `10/minute;100/hour` as limits; empty or `off`: no limit."""
    if text.strip().lower() in {"", "off"}:
        return ()
    return tuple(parse_many(text))


@dataclass(frozen=True, slots=True)
class RateLimits:
    """What is limited. Sign-in limits apply to unsafe methods (POST, ...) on `login_paths`
    (a path equal to a prefix or below it); the public limit to every request but streams."""

    login: tuple[RateLimitItem, ...] = ()
    public: tuple[RateLimitItem, ...] = ()
    login_paths: tuple[str, ...] = ("/api/auth/", "/login")
    streams_per_client: int = 0
    # login_paths without their trailing slash, and with one: what is_login compares with.
    _exact: frozenset[str] = field(init=False, default=frozenset())
    _below: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        stems = [path.rstrip("/") for path in self.login_paths]
        object.__setattr__(self, "_exact", frozenset(stems))
        object.__setattr__(self, "_below", tuple(stem + "/" for stem in stems))

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        return cls(
            login=parse_rate(settings.rate_limit_login),
            public=parse_rate(settings.rate_limit_public),
            login_paths=tuple(setting_items(settings.rate_limit_login_paths)),
            streams_per_client=settings.stream_connections_per_client,
        )

    def is_login(self, method: str, path: str) -> bool:
        if method in SAFE_METHODS:
            return False
        return path in self._exact or path.startswith(self._below)


class LocalCounters(Storage):
    """Fixed-window counters in this process's memory. Expired windows are swept at most every
    `sweep_seconds`, so a hit costs the same with a million client addresses as with one."""

    STORAGE_SCHEME = None

    def __init__(self, *, sweep_seconds: float = 10.0, clock: Callable[[], float] = time.time):
        super().__init__()
        self._windows: dict[str, tuple[int, float]] = {}
        self._sweep_seconds = sweep_seconds
        self._clock = clock
        self._next_sweep = clock() + sweep_seconds

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self._clock()
        if now >= self._next_sweep:
            self._windows = {k: w for k, w in self._windows.items() if w[1] > now}
            self._next_sweep = now + self._sweep_seconds
        count, ends = self._windows.get(key, (0, 0.0))
        if ends <= now:
            count, ends = 0, now + expiry
        self._windows[key] = (count + amount, ends)
        return count + amount

    async def get(self, key: str) -> int:
        count, ends = self._windows.get(key, (0, 0.0))
        return count if ends > self._clock() else 0

    async def get_expiry(self, key: str) -> float:
        _, ends = self._windows.get(key, (0, 0.0))
        return max(ends, self._clock())

    async def check(self) -> bool:
        return True

    async def reset(self) -> int | None:
        cleared = len(self._windows)
        self._windows = {}
        return cleared

    async def clear(self, key: str) -> None:
        self._windows.pop(key, None)


def limit_storage(settings: Settings) -> Storage:
    """Redis when JETBRIDGE_REDIS_URL is set (limits hold across processes), else this process."""
    if not settings.redis_url:
        return LocalCounters()
    from limits.aio.storage import RedisStorage

    return RedisStorage(
        f"async+{settings.redis_url}",
        implementation="redispy",
        wrap_exceptions=True,
        key_prefix="jetbridge-limits",
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
    )


def client_key(scope: Scope) -> str:
    """Whom a limit counts: the client's address; for IPv6 its /64, which one subscriber
    usually holds whole."""
    client = scope.get("client")
    return _address_key(str(client[0]) if client else "")


@functools.lru_cache(maxsize=4096)
def _address_key(host: str) -> str:
    """Remembered: a busy client is counted on every request, its address parsed once."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64] or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class RateLimit:
    """Pure ASGI middleware answering 429 with Retry-After when a limit is exceeded."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: RateLimits,
        storage: Storage | None = None,
        stream_paths: re.Pattern[str] = STREAM_PATHS,
    ) -> None:
        self.app = app
        self.limits = limits
        self.limiter = FixedWindowRateLimiter(storage or LocalCounters())
        self.stream_paths = stream_paths
        self.open_streams: dict[str, int] = {}
        self._storage_failed_at = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = client_key(scope)
        method, path = scope["method"], scope["path"]
        if method == "GET" and self.stream_paths.fullmatch(path):
            await self._stream(key, scope, receive, send)
            return
        if self.limits.is_login(method, path):
            wait = await self._exceeded("login", self.limits.login, key)
            if wait:
                message = f"too many sign-in requests from this address; retry in {wait} s"
                await _refuse(message, wait, scope, receive, send)
                return
        wait = await self._exceeded("public", self.limits.public, key)
        if wait:
            message = f"too many requests from this address; retry in {wait} s"
            await _refuse(message, wait, scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _exceeded(self, name: str, items: tuple[RateLimitItem, ...], key: str) -> int:
        """Seconds until the exhausted limit allows again; 0 when every limit allows this hit."""
        for item in items:
            try:
                if await self.limiter.hit(item, name, key):
                    continue
                stats = await self.limiter.get_window_stats(item, name, key)
            except StorageError as exc:
                self._storage_failed(exc)
                return 0
            return max(1, math.ceil(stats.reset_time - time.time()))
        return 0

    def _storage_failed(self, exc: StorageError) -> None:
        # Limits fail open: an outage of the shared store must not take the API down with it.
        if time.monotonic() - self._storage_failed_at > 60:
            self._storage_failed_at = time.monotonic()
            log.warning("rate limits are not enforced: their store failed: %s", exc)

    async def _stream(self, key: str, scope: Scope, receive: Receive, send: Send) -> None:
        cap = self.limits.streams_per_client
        if not cap:
            await self.app(scope, receive, send)
            return
        if self.open_streams.get(key, 0) >= cap:
            message = f"this address holds {cap} open event streams already; close one first"
            await _refuse(message, 5, scope, receive, send)
            return
        self.open_streams[key] = self.open_streams.get(key, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            left = self.open_streams[key] - 1
            if left:
                self.open_streams[key] = left
            else:
                del self.open_streams[key]


async def _refuse(
    message: str, retry_after: int, scope: Scope, receive: Receive, send: Send
) -> None:
    response = error_body(429, "TooManyRequests", message)
    response.headers["Retry-After"] = str(retry_after)
    await response(scope, receive, send)
