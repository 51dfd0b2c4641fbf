"""Per-tenant quotas: one tenant's callers cannot flood the database for everyone. A rate of
state-changing requests per tenant (shared through Redis when configured), and caps on how many
buses and rules a tenant may hold (EventBridge's own defaults: 100 buses, 300 rules a bus)."""

from __future__ import annotations

import logging
import math
import time

from limits import parse_many
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import Connection, func, select

from jetbridge.config import Settings
from jetbridge.errors import TooManyRequests
from jetbridge.ops.identity.principal import Principal
from jetbridge.storage.schema import buses, rules

log = logging.getLogger(__name__)
MAX_BUSES_PER_TENANT = 100
MAX_RULES_PER_BUS = 300


class TenantQuota:
    def __init__(self, settings: Settings) -> None:
        rate = settings.tenant_write_quota.strip()
        self.items = () if rate.lower() in {"", "off"} else tuple(parse_many(rate))
        url = settings.redis_url or "memory://"
        self.limiter = FixedWindowRateLimiter(storage_from_string(url))
        # Counted in this process's memory: charging never blocks on a network round trip.
        self.local = not settings.redis_url

    def charge(self, caller: Principal) -> None:
        """Count one state-changing request against the caller's tenant (the operator and
        callers of no tenant are limited per address only)."""
        if caller.tenant is None or not self.items:
            return
        for item in self.items:
            try:
                if self.limiter.hit(item, "tenant-writes", caller.tenant):
                    continue
                stats = self.limiter.get_window_stats(item, "tenant-writes", caller.tenant)
            except StorageError as exc:  # fail open, as the address limits do
                log.warning("tenant quotas are not enforced: their store failed: %s", exc)
                return
            wait = max(1, math.ceil(stats.reset_time - time.time()))
            raise TooManyRequests(
                f"tenant {caller.tenant} has used its quota of changes ({item}); retry in {wait} s",
                retry_after=wait,
            )


def check_bus_count(conn: Connection, tenant: str | None) -> None:
    if tenant is None:
        return
    count = conn.execute(select(func.count()).where(buses.c.tenant == tenant)).scalar_one()
    if count >= MAX_BUSES_PER_TENANT:
        raise TooManyRequests(
            f"tenant {tenant} has {count} event buses, the most a tenant may hold", retry_after=60
        )


def check_rule_count(conn: Connection, bus: str, rule: str) -> None:
    exists = conn.execute(
        select(rules.c.name).where(rules.c.bus == bus, rules.c.name == rule)
    ).first()
    if exists:
        return
    count = conn.execute(select(func.count()).where(rules.c.bus == bus)).scalar_one()
    if count >= MAX_RULES_PER_BUS:
        raise TooManyRequests(
            f"event bus {bus!r} has {count} rules, the most a bus may hold", retry_after=60
        )
