"""Search results cached in Redis for a few seconds (seat counts and fares move)."""

from __future__ import annotations

import logging

import redis

log = logging.getLogger(__name__)


class RedisSearchCache:
    """A `SearchCache` on Redis; an unreachable Redis degrades to no caching, never to errors."""

    def __init__(self, url: str, *, prefix: str = "jetbridge:") -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._prefix = prefix

    def get(self, key: str) -> str | None:
        try:
            value = self._client.get(self._prefix + key)
        except redis.RedisError:
            log.warning("search cache unavailable; reading through")
            return None
        return value.decode() if isinstance(value, bytes) else None

    def set(self, key: str, value: str, ttl: int) -> None:
        try:
            self._client.set(self._prefix + key, value, ex=ttl)
        except redis.RedisError:
            log.warning("search cache unavailable; not caching")

    def close(self) -> None:
        self._client.close()
