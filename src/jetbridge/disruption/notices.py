"""Notices to passengers: recorded once per booking and content (the page shows them), then sent
on each channel the booking's contacts name (email, SMS, webhook) through the notifications
bus, with its retries and dead-letter queue. Events carry ids only: addresses and links are
read from the database when sending."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import Connection, select

from jetbridge.booking.personal_data import PersonalData
from jetbridge.disruption import store
from jetbridge.events import registry
from jetbridge.events.backbone import Backbone
from jetbridge.events.envelope import CloudEvent
from jetbridge.events.handlers import HandlerRegistry
from jetbridge.events.signing import SIGNATURE_HEADER, sign
from jetbridge.events.specs import RuleSpec
from jetbridge.events.targets import DeliveryFailed
from jetbridge.notify.email import Mailer
from jetbridge.notify.subscriptions import NOTIFY_BUS
from jetbridge.ops.outbound import OutboundRefused
from jetbridge.storage.schema import disruption_notices
from jetbridge.storage.transient import retry_transient

SOURCE = "jetbridge.disruption"
CHANNELS = ("email", "sms", "webhook")
_CONTACT = {"email": "email", "sms": "phone", "webhook": "webhook_url"}


def install_rules(conn: Connection, *, handlers: HandlerRegistry) -> None:
    """Route notices to each channel's sender (idempotent; run at start)."""
    registry.ensure_bus(conn, name=NOTIFY_BUS, description="Passenger notifications")
    for channel in CHANNELS:
        rule = {
            "name": f"disruption-{channel}",
            "event_pattern": {
                "source": [SOURCE],
                "detail-type": ["disruption.notice"],
                "detail": {"channel": [channel]},
            },
            "targets": [
                {"id": channel, "kind": "python", "handler": f"service:disruption.{channel}"}
            ],
        }
        registry.install_rule(
            conn, bus=NOTIFY_BUS, spec=RuleSpec.model_validate(rule), handlers=handlers
        )


@dataclass(frozen=True, slots=True)
class Notice:
    """One notice to a booking's passengers about a flight's disruption."""

    notice_id: str
    booking_id: str
    flight_key: str
    kind: str
    message: dict[str, Any]


@dataclass
class Notices:
    backbone: Backbone
    personal: PersonalData
    http: httpx.AsyncClient
    smtp: Mailer | None
    sms: Any = None  # an SmsSender, when an SMS gateway is configured
    webhook_secret: str = ""

    def register(self, handlers: HandlerRegistry) -> None:
        handlers.register_service("disruption.email", self.email)
        handlers.register_service("disruption.sms", self.text)
        handlers.register_service("disruption.webhook", self.webhook)

    def issue_many(self, conn: Connection, notices: Sequence[Notice]) -> list[str]:
        """Record notices and queue each on its booking's channels, in a few statements for
        all of them (inside the caller's transaction); the ids of those not sent before."""
        fresh = store.record_notices(
            conn,
            [
                {
                    "notice_id": n.notice_id,
                    "booking_id": n.booking_id,
                    "flight_key": n.flight_key,
                    "kind": n.kind,
                    "message": json.dumps(n.message),
                }
                for n in notices
            ],
        )
        if not fresh:
            return []
        now = time.time()
        by_flight: dict[str, list[str]] = {}
        for notice in fresh:
            by_flight.setdefault(notice["flight_key"], []).append(notice["booking_id"])
        for flight_key, booking_ids in by_flight.items():
            store.mark_notified(conn, flight_key=flight_key, booking_ids=booking_ids, at=now)
        contacts = store.contacts_of_many(
            conn, self.personal, booking_ids=sorted({n["booking_id"] for n in fresh})
        )
        events = [
            CloudEvent(
                id=f"{notice['notice_id']}:{channel}",
                source=SOURCE,
                type="disruption.notice",
                subject=notice["flight_key"],
                partitionkey=notice["booking_id"],
                data={
                    "notice_id": notice["notice_id"],
                    "booking_id": notice["booking_id"],
                    "channel": channel,
                },
            )
            for notice in fresh
            for channel in CHANNELS
            if contacts.get(notice["booking_id"], {}).get(_CONTACT[channel])
        ]
        if events:
            self.backbone.publish(conn, bus=NOTIFY_BUS, events=events)
        return [notice["notice_id"] for notice in fresh]

    def _read(self, detail: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]] | None:
        def read() -> tuple[dict[str, Any], dict[str, str]] | None:
            with self.backbone.reading() as conn:
                text = conn.execute(
                    select(disruption_notices.c.message).where(
                        disruption_notices.c.notice_id == detail["notice_id"]
                    )
                ).scalar()
                if text is None:
                    return None
                contacts = store.contacts_of(conn, self.personal, booking_id=detail["booking_id"])
                return json.loads(text), contacts

        return retry_transient(read, what="reading a disruption notice")

    def email(self, event: dict[str, Any]) -> None:
        found = self._read(event["detail"])
        if found is None or not found[1].get("email"):
            return
        if self.smtp is None:
            raise DeliveryFailed("email: no SMTP server is configured", retryable=False)
        message, contacts = found
        try:
            self.smtp.send(
                to=contacts["email"],
                subject=message["subject"],
                text=message["text"],
                key=event["id"],
            )
        except OSError as exc:
            raise DeliveryFailed(f"email: {type(exc).__name__}") from None

    async def text(self, event: dict[str, Any]) -> None:
        from jetbridge.disruption.sms import SmsFailed

        found = await asyncio.to_thread(self._read, event["detail"])
        if found is None or not found[1].get("phone"):
            return
        if self.sms is None:
            raise DeliveryFailed("sms: no SMS gateway is configured", retryable=False)
        message, contacts = found
        text = message["subject"] + (f" {message['link']}" if message.get("link") else "")
        try:
            await self.sms.send(to=contacts["phone"], text=text)
        except SmsFailed as exc:
            raise DeliveryFailed(str(exc), retryable=exc.retryable) from None
        except OutboundRefused as exc:
            raise DeliveryFailed(f"sms: {exc.describe(with_host=False)}", retryable=False) from None

    async def webhook(self, event: dict[str, Any]) -> None:
        found = await asyncio.to_thread(self._read, event["detail"])
        if found is None or not found[1].get("webhook_url"):
            return
        message, contacts = found
        body = json.dumps(
            {"booking_id": event["detail"]["booking_id"], **message}, separators=(",", ":")
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Jetbridge-Event-Id": event["id"],
            SIGNATURE_HEADER: sign(contacts.get("webhook_secret") or self.webhook_secret, body),
        }
        try:
            response = await self.http.post(contacts["webhook_url"], content=body, headers=headers)
        except OutboundRefused as exc:
            reason = exc.describe(with_host=False)
            raise DeliveryFailed(f"webhook: {reason}", retryable=False) from None
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"webhook: {type(exc).__name__}") from None
        if response.status_code >= 300:
            retryable = response.status_code in {408, 429} or response.status_code >= 500
            raise DeliveryFailed(f"webhook: HTTP {response.status_code}", retryable=retryable)
