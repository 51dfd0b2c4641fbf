"""Disruption handling put together: the rule, its two system state machines, the channels and
the passenger's choice through the signed link."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

import httpx
from sqlalchemy import Connection

from jetbridge.booking.facade import Bookings
from jetbridge.disruption import store
from jetbridge.disruption.links import LinkSigner
from jetbridge.disruption.notices import Notices, install_rules
from jetbridge.disruption.policy import DisruptionRules
from jetbridge.disruption.sms import HttpSms
from jetbridge.disruption.tasks import DisruptionTasks
from jetbridge.disruption.trigger import Detector, install_rule
from jetbridge.errors import Conflict, InvalidRequest, NotFound
from jetbridge.events.backbone import Backbone
from jetbridge.notify.email import Mailer
from jetbridge.ops.crypto import Keyring
from jetbridge.workflows.engine import WorkflowEngine
from jetbridge.workflows.tokens import TaskTimedOut


def _definition(name: str) -> dict[str, Any]:
    text = resources.files("jetbridge.workflows").joinpath(f"definitions/{name}").read_text()
    return dict(json.loads(text))


DISRUPTION = _definition("disruption.jetbridge.asl.json")
REBOOKING = _definition("rebooking.jetbridge.asl.json")


@dataclass
class DisruptionService:
    backbone: Backbone
    workflows: WorkflowEngine
    bookings: Bookings
    notices: Notices
    signer: LinkSigner
    rules: DisruptionRules
    detector: Detector

    def install(self, conn: Connection) -> None:
        """The platform's rules for disruptions (idempotent; run at start)."""
        install_rule(conn, handlers=self.backbone.handlers)
        install_rules(conn, handlers=self.backbone.handlers)

    def choose(self, *, link: str, action: str, offer: int | None) -> dict[str, Any]:
        """The passenger's answer through the signed link: accept offer `offer`, or refund.
        It is kept once; the rebooking workflow waiting for it (or about to) goes on."""
        choice = self.signer.verify(link, now=time.time())
        if action not in {"accept", "refund"}:
            raise InvalidRequest("action: expected 'accept' or 'refund'")
        with self.backbone.reading() as conn:
            case = store.get_case(conn, flight_key=choice.flight_key, booking_id=choice.booking_id)
        if case is None:
            raise NotFound("link: no disruption of this booking is open")
        if case["status"] != "waiting" or case["choice"] is not None:
            raise Conflict("link: this choice was made already")
        if action == "accept":
            numbers = [o["offer"] for o in case["offers"]]
            if offer not in numbers:
                raise InvalidRequest(f"offer: expected one of {numbers}, as listed in the notice")
        answer = {"action": action, "offer": offer if action == "accept" else None}
        with self.backbone.transaction() as conn:
            token = store.record_choice(
                conn, flight_key=choice.flight_key, booking_id=choice.booking_id, choice=answer
            )
        if token is not None:
            try:
                self.workflows.tokens.answer(token, output=answer)
            except TaskTimedOut:
                raise Conflict(
                    "link: the time to choose has passed; the first offer was kept"
                ) from None
            except Conflict:
                pass  # the workflow found the recorded choice first
        return {"booking_id": choice.booking_id, "flight_key": choice.flight_key, **answer}

    def offers_of(self, *, link: str) -> dict[str, Any]:
        """What the link's page shows: the disruption, the offers, the case's state."""
        choice = self.signer.verify(link, now=time.time())
        with self.backbone.reading() as conn:
            case = store.get_case(conn, flight_key=choice.flight_key, booking_id=choice.booking_id)
            notices = store.notices_of(conn, booking_id=choice.booking_id)
        if case is None:
            raise NotFound("link: no disruption of this booking is open")
        return {
            "booking_id": choice.booking_id,
            **_case_shown(case),
            "notices": [
                {**n, "message": _shown(json.loads(n["message"]))}
                for n in notices
                if n["flight_key"] == choice.flight_key
            ],
        }

    def of_booking(self, *, booking_id: str) -> dict[str, Any]:
        """A booking's disruptions and the notices it was sent (the passenger's page)."""
        with self.backbone.reading() as conn:
            cases = store.cases_of_booking(conn, booking_id=booking_id)
            notices = store.notices_of(conn, booking_id=booking_id)
        for notice in notices:
            notice["message"] = _shown(json.loads(notice["message"]))
        shown = [_case_shown(case) for case in cases]
        return {"booking_id": booking_id, "disruptions": shown, "notices": notices}

    def set_contacts(self, *, booking_id: str, contacts: dict[str, str]) -> None:
        with self.backbone.transaction() as conn:
            store.set_contacts(
                conn, self.bookings.personal, booking_id=booking_id, contacts=contacts
            )

    def flights(self, *, airline: str | None, limit: int = 200) -> list[dict[str, Any]]:
        with self.backbone.reading() as conn:
            return store.disrupted_flights(conn, airline=airline, limit=limit)


def _case_shown(case: dict[str, Any]) -> dict[str, Any]:
    """A case as passengers see it (never the workflow's task token)."""
    keep = ("flight_key", "kind", "status", "offers", "new_flight_id", "choose_by")
    return {key: case[key] for key in keep} | {"chosen": case["choice"]}


def _shown(message: dict[str, Any]) -> dict[str, Any]:
    return {
        key: message[key]
        for key in ("subject", "text", "offers", "link", "choose_by")
        if key in message
    }


def build(
    *,
    backbone: Backbone,
    workflows: WorkflowEngine,
    bookings: Bookings,
    keyring: Keyring,
    http: httpx.AsyncClient,
    smtp: Mailer | None,
    rules: DisruptionRules,
    public_url: str,
    sms_url: str | None = None,
    sms_api_key: str = "",
    webhook_secret: str = "",
) -> DisruptionService:
    """The service, its system machines on `workflows` and its handlers on the backbone."""
    sms = HttpSms(http, base_url=sms_url, api_key=sms_api_key) if sms_url else None
    notices = Notices(backbone, bookings.personal, http, smtp, sms, webhook_secret)
    signer = LinkSigner(keyring.derive("jetbridge disruption links v1"))

    def start_rebooking(booking_id: str, payload: dict[str, Any]) -> None:
        try:
            workflows.start_system(
                machine="rebooking",
                name=f"rebooking-{booking_id}-{payload['flight_key']}",
                definition=REBOOKING,
                input=payload,
            )
        except Conflict:
            return  # started before for this booking and flight

    def start_flight(name: str, payload: dict[str, Any]) -> None:
        workflows.start_system(
            machine="disruption", name=name, definition=DISRUPTION, input=payload
        )

    tasks = DisruptionTasks(
        backbone=backbone,
        booking_tasks=bookings.tasks,
        notices=notices,
        signer=signer,
        rules=rules,
        start_rebooking=start_rebooking,
        revoke_points=bookings.revoke_points,
        answer=lambda token, output: workflows.tokens.answer(token, output=output),
        public_url=public_url.rstrip("/"),
    )
    workflows.add_system_machine(
        "disruption", prefix="disruption-", handlers=tasks.flight_handlers()
    )
    workflows.add_system_machine(
        "rebooking", prefix="rebooking-", handlers=tasks.rebooking_handlers()
    )
    detector = Detector(backbone, rules, start_flight)
    backbone.handlers.register_service("disruption.detect", detector.detect)
    notices.register(backbone.handlers)
    return DisruptionService(backbone, workflows, bookings, notices, signer, rules, detector)
