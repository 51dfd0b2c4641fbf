"""Passenger flight status subscriptions: webhook (HMAC-signed) or email, one message per
meaningful change, delivered through the backbone (its retries, its dead-letter queue).

flight.updated (default bus) --rule--> fan-out: one `notification.requested` per subscription,
with an id made of subscription, flight and version (so it is published once) --> bus
`notifications` --rules--> webhook sender / email sender.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection, insert, select, update

from jetbridge.errors import NotFound
from jetbridge.events import registry
from jetbridge.events.backbone import Backbone
from jetbridge.events.envelope import CloudEvent
from jetbridge.events.handlers import HandlerRegistry
from jetbridge.events.signing import SIGNATURE_HEADER, sign
from jetbridge.events.specs import RuleSpec
from jetbridge.events.targets import DeliveryFailed
from jetbridge.notify.email import Mailer
from jetbridge.ops.outbound import OutboundRefused
from jetbridge.storage.lookups import BatchedLookup
from jetbridge.storage.schema import subscriptions
from jetbridge.storage.transient import retry_transient, retry_transient_async

NOTIFY_BUS = "notifications"
NOTIFY_SOURCE = "jetbridge.notify"
MEANINGFUL = [
    "status",
    "gate",
    "terminal",
    "baggage_belt",
    "diversion_airport",
    "times.off_block.estimated",
    "times.on_block.estimated",
    "times.off_block.actual",
    "times.on_block.actual",
    "times.boarding_start.actual",
    "times.final_call.actual",
    "times.gate_close.actual",
]
EMAIL = re.compile(r"^[^@\s<>]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,}$")


class SubscriptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    flight_key: Annotated[
        str,
        Field(
            max_length=64,
            pattern=r"^[A-Z0-9]{2,3}\d{4}[A-Z]?-\d{4}-\d{2}-\d{2}-[A-Z]{3}-[A-Z]{3}(-R\d+)?$",
        ),
    ]
    channel: Literal["webhook", "email"]
    url: Annotated[str, Field(max_length=2048, pattern=r"^https?://[^\s]+$")] | None = None
    email: Annotated[str, Field(max_length=320)] | None = None

    @model_validator(mode="after")
    def _target(self) -> SubscriptionRequest:
        if self.channel == "webhook" and not self.url:
            raise ValueError("a webhook subscription needs 'url'")
        if self.channel == "email" and not (self.email and EMAIL.match(self.email)):
            raise ValueError("an email subscription needs a valid 'email'")
        return self


def subscribe(
    conn: Connection,
    *,
    request: SubscriptionRequest,
    current_version: int,
    owner: str | None = None,
    tenant: str | None = None,
) -> dict[str, Any]:
    """The new subscription: its id is the unsubscribe token; webhooks also get their secret."""
    secret = secrets.token_hex(16) if request.channel == "webhook" else None
    row = {
        "subscription_id": str(uuid.uuid4()),
        "flight_key": request.flight_key,
        "channel": request.channel,
        "target": request.url if request.channel == "webhook" else request.email,
        "secret": secret,
        "from_version": current_version,
        "created_at": time.time(),
        "active": True,
        "owner": owner,
        "tenant": tenant,
    }
    conn.execute(insert(subscriptions).values(**row))
    shown = {k: row[k] for k in ("subscription_id", "flight_key", "channel", "target")}
    return shown | ({"secret": secret} if secret else {})


def unsubscribe(conn: Connection, *, subscription_id: str) -> None:
    result = conn.execute(
        update(subscriptions)
        .where(subscriptions.c.subscription_id == subscription_id, subscriptions.c.active.is_(True))
        .values(active=False)
    )
    if result.rowcount == 0:
        raise NotFound(f"subscription {subscription_id!r} does not exist or was cancelled")


def install_rules(conn: Connection, *, handlers: HandlerRegistry) -> None:
    """The routing of flight changes to subscribers (idempotent; run at start). These are the
    platform's rules: they name its services, and callers cannot change them."""
    registry.ensure_bus(conn, name=NOTIFY_BUS, description="Passenger notifications")
    fan_out = {
        "name": "subscriptions-fan-out",
        "event_pattern": {
            "source": ["jetbridge.flights"],
            "detail-type": ["flight.updated"],
            "detail": {"changed": MEANINGFUL},
        },
        "targets": [
            {"id": "fan-out", "kind": "python", "handler": "service:subscriptions.fan-out"}
        ],
    }
    registry.install_rule(
        conn, bus="default", spec=RuleSpec.model_validate(fan_out), handlers=handlers
    )
    for channel in ("webhook", "email"):
        rule = {
            "name": f"notify-{channel}",
            "event_pattern": {
                "source": [NOTIFY_SOURCE],
                "detail-type": ["notification.requested"],
                "detail": {"channel": [channel]},
            },
            "targets": [
                {"id": channel, "kind": "python", "handler": f"service:subscriptions.{channel}"}
            ],
        }
        registry.install_rule(
            conn, bus=NOTIFY_BUS, spec=RuleSpec.model_validate(rule), handlers=handlers
        )


@dataclass
class Notifier:
    backbone: Backbone
    http: httpx.AsyncClient
    smtp: Mailer | None
    # The reads of handlers running at the same time are made together (one statement).
    followers: BatchedLookup[str, list[Any]] = field(init=False)
    senders: BatchedLookup[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.followers = BatchedLookup(self._read_followers)
        self.senders = BatchedLookup(self._read_subscriptions)

    async def fan_out(self, event: dict[str, Any]) -> None:
        """One notice per active subscription. The notices of fan-outs running at the same
        time are written in one transaction (the intake's group commit), not one each; a busy
        database is waited out with backoff."""
        detail = event["detail"]
        # Most flights of a hub have no followers: a read answers those, and only the
        # notices of followed flights are written (and wake anyone).
        following = await self.followers.get(detail["flight_key"]) or []
        rows = [row for row in following if row.from_version < detail["version"]]
        if not rows:
            return
        # A subscription cancelled meanwhile gets a notice its sender skips (it checks).
        notices = [_notice(row.subscription_id, row.channel, detail) for row in rows]
        await retry_transient_async(
            lambda: self.backbone.intake.put(
                bus=NOTIFY_BUS, events=notices, may_act_for=_the_platform
            ),
            what=f"fanning out {event['id']}",
        )

    def _read_followers(self, flight_keys: Sequence[str]) -> dict[str, list[Any]]:
        def read() -> dict[str, list[Any]]:
            found: dict[str, list[Any]] = {}
            with self.backbone.reading() as conn:
                rows = conn.execute(
                    select(
                        subscriptions.c.flight_key,
                        subscriptions.c.subscription_id,
                        subscriptions.c.channel,
                        subscriptions.c.from_version,
                    )
                    .where(
                        subscriptions.c.flight_key.in_(flight_keys),
                        subscriptions.c.active.is_(True),
                    )
                    .order_by(subscriptions.c.subscription_id)
                )
                for row in rows:
                    found.setdefault(row.flight_key, []).append(row)
            return found

        return retry_transient(read, what="reading flights' followers")

    def _read_subscriptions(self, ids: Sequence[str]) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            with self.backbone.reading() as conn:
                rows = conn.execute(
                    select(subscriptions).where(subscriptions.c.subscription_id.in_(ids))
                )
                return {row.subscription_id: row for row in rows}

        return retry_transient(read, what="reading subscriptions")

    def _subscription(self, subscription_id: str) -> Any:
        return self._read_subscriptions([subscription_id]).get(subscription_id)

    async def webhook(self, event: dict[str, Any]) -> None:
        detail = event["detail"]
        row = await self.senders.get(detail["subscription_id"])
        if row is None or not row.active:
            return
        body = json.dumps(_message(detail), separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Jetbridge-Event-Id": event["id"],
            SIGNATURE_HEADER: sign(row.secret, body),
        }
        try:
            response = await self.http.post(row.target, content=body, headers=headers)
        except OutboundRefused as exc:
            # The subscriber's host name stays out of the dead letter: it may identify them.
            reason = exc.describe(with_host=False)
            raise DeliveryFailed(f"webhook: {reason}", retryable=False) from None
        except httpx.InvalidURL:
            raise DeliveryFailed("webhook: the URL is not valid", retryable=False) from None
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"webhook: {type(exc).__name__}") from None
        if response.status_code >= 300:
            retryable = response.status_code in {408, 429} or response.status_code >= 500
            raise DeliveryFailed(f"webhook: HTTP {response.status_code}", retryable=retryable)

    def email(self, event: dict[str, Any]) -> None:
        detail = event["detail"]
        row = self._subscription(detail["subscription_id"])
        if row is None or not row.active:
            return
        if self.smtp is None:
            raise DeliveryFailed("email: no SMTP server is configured", retryable=False)
        message = _message(detail)
        try:
            self.smtp.send(
                to=row.target,
                subject=message["summary"],
                text=_email_text(message),
                key=event["id"],
            )
        except OSError as exc:
            raise DeliveryFailed(f"email: {type(exc).__name__}") from None


def _the_platform(owner: str | None) -> bool:
    """The notifications bus is the platform's own (no tenant owns it)."""
    return owner is None


def _notice(subscription_id: str, channel: str, detail: dict[str, Any]) -> CloudEvent:
    return CloudEvent(
        id=f"{subscription_id}:{detail['flight_key']}:{detail['version']}",
        source=NOTIFY_SOURCE,
        type="notification.requested",
        subject=detail["flight_key"],
        partitionkey=subscription_id,
        data={
            "subscription_id": subscription_id,
            "channel": channel,
            "flight": detail["flight"],
            "changed": detail["changed"],
        },
    )


def _message(detail: dict[str, Any]) -> dict[str, Any]:
    flight = detail["flight"]
    parts = [
        f"{flight['flight']} {flight['departure_airport']}-{flight['arrival_airport']}",
        flight["status"],
    ]
    if flight.get("gate"):
        parts.append(f"gate {flight['gate']}")
    if flight.get("baggage_belt"):
        parts.append(f"baggage belt {flight['baggage_belt']}")
    return {
        "summary": ", ".join(parts),
        "flight_key": flight["flight_key"],
        "version": flight["version"],
        "changed": detail["changed"],
        "flight": flight,
    }


def _email_text(message: dict[str, Any]) -> str:
    changed = ", ".join(message["changed"])
    return f"{message['summary']}\n\nChanged: {changed}\nVersion {message['version']}\n"
