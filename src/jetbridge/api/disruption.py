"""Disruptions over HTTP: the operations view of disrupted flights (agents, their airline's),
a booking's disruptions and contacts (its passenger or guest), and the passenger's choice
through the signed link (the link is the credential: no account needed)."""

from __future__ import annotations

import html
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from jetbridge.api.booking import GuestToken, visible_booking
from jetbridge.api.deps import BookingsDep, check_outbound_url
from jetbridge.api.policy import Agent, Public, PublicForm
from jetbridge.disruption.links import MAX_LINK_CHARS
from jetbridge.disruption.service import DisruptionService
from jetbridge.disruption.sms import PHONE
from jetbridge.errors import Conflict, Forbidden, InvalidRequest, JetbridgeError, NotFound
from jetbridge.notify.subscriptions import EMAIL
from jetbridge.ops.identity.principal import Principal
from jetbridge.web.account import STYLE  # its hash is in the pages' Content-Security-Policy

router = APIRouter(tags=["disruption"])
Link = Annotated[str, Query(min_length=1, max_length=MAX_LINK_CHARS)]
# a booking's id as the booking service issues it (a UUID); anything else is named, not looked up
BookingId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z-]+$")]


def disruption_of(platform: Any) -> DisruptionService:
    service: DisruptionService | None = getattr(platform, "disruption", None)
    if service is None:
        raise NotFound("disruption handling is not enabled on this platform")
    return service


def get_disruption(request: Request) -> DisruptionService:
    return disruption_of(request.app.state.platform)


DisruptionDep = Annotated[DisruptionService, Depends(get_disruption)]


class Contacts(BaseModel):
    """How a booking's passengers hear of disruptions; every field is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    email: Annotated[str, Field(max_length=320)] | None = None
    phone: Annotated[str, Field(max_length=16)] | None = None
    webhook_url: Annotated[str, Field(max_length=2048, pattern=r"^https?://[^\s]+$")] | None = None


class ChoiceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    link: Annotated[str, Field(min_length=1, max_length=MAX_LINK_CHARS)]
    action: Annotated[str, Field(pattern=r"^(accept|refund)$")]
    offer: Annotated[int, Field(ge=0, le=63)] | None = None


@router.get("/api/disruptions")
def disrupted_flights(
    service: DisruptionDep,
    caller: Agent,
    airline: Annotated[str | None, Query(pattern=r"^[A-Z0-9]{2,3}$")] = None,
) -> list[dict[str, Any]]:
    """Disrupted flights with their passengers counted: affected, notified, rebooked, refunded,
    waiting. Staff see their airline's; the operator sees all (or `airline`'s)."""
    return service.flights(airline=_airline_of(caller, airline))


def _airline_of(caller: Principal, asked: str | None) -> str | None:
    if caller.is_operator:
        return asked
    if caller.tenant is None:
        raise NotFound("no airline: the disruption view belongs to an airline's staff")
    return caller.tenant


@router.get("/api/bookings/{booking_id}/disruptions")
def booking_disruptions(
    booking_id: BookingId,
    request: Request,
    bookings: BookingsDep,
    service: DisruptionDep,
    caller: Public,
    token: GuestToken = None,
) -> dict[str, Any]:
    """The booking's disruptions, its offers and the notices sent (the passenger's page)."""
    visible_booking(request, bookings, caller, booking_id, token)
    return service.of_booking(booking_id=booking_id)


@router.put("/api/bookings/{booking_id}/contacts")
def set_contacts(
    booking_id: BookingId,
    body: Contacts,
    request: Request,
    bookings: BookingsDep,
    service: DisruptionDep,
    caller: Public,
    token: GuestToken = None,
) -> dict[str, Any]:
    """Where to send disruption notices (replaces the booking's contacts); a webhook's notices
    are signed with the secret answered here."""
    visible_booking(request, bookings, caller, booking_id, token)
    if body.email is not None and not EMAIL.match(body.email):
        raise InvalidRequest("email: expected an address such as name@example.com")
    if body.phone is not None and not PHONE.match(body.phone):
        raise InvalidRequest("phone: expected an international number such as +41441234567")
    contacts = {k: v for k, v in body.model_dump().items() if v is not None}
    answer: dict[str, Any] = {"booking_id": booking_id, "channels": sorted(contacts)}
    if body.webhook_url:
        check_outbound_url(
            request.app.state.platform.outbound, body.webhook_url, where="webhook_url"
        )
        contacts["webhook_secret"] = answer["webhook_secret"] = secrets.token_hex(16)
    service.set_contacts(booking_id=booking_id, contacts=contacts)
    return answer


@router.get("/api/disruptions/choice")
def choice_offers(link: Link, service: DisruptionDep, _: Public) -> dict[str, Any]:
    """What a signed link offers."""
    return service.offers_of(link=link)


@router.post("/api/disruptions/choice")
def choose(body: ChoiceRequest, service: DisruptionDep, _: Public) -> dict[str, Any]:
    """Accept one offer, or ask for a refund, with the signed link from the notice."""
    return service.choose(link=body.link, action=body.action, offer=body.offer)


# --- pages ----------------------------------------------------------------------------------


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>jetbridge — '
        f"{html.escape(title)}</title>{STYLE}</head><body><header><h1>jetbridge</h1></header>"
        f"<main>{body}</main></body></html>"
    )


def _choice_form(link: str, action: str, label: str, offer: int | None = None) -> str:
    chosen = f'<input type="hidden" name="offer" value="{offer}">' if offer is not None else ""
    name = f"accept-{offer}" if offer is not None else "refund"
    return (
        '<form method="post" action="/disruption/choose">'
        f'<input type="hidden" name="link" value="{html.escape(link)}">'
        f'<input type="hidden" name="action" value="{action}">{chosen}'
        f'<button type="submit" id="{name}">{html.escape(label)}</button></form>'
    )


@router.get("/disruption/choose", response_class=HTMLResponse, include_in_schema=False)
def choice_page(link: Link, service: DisruptionDep, _: Public) -> HTMLResponse:
    """The signed link's page: the disruption, the held offers, accept or refund."""
    try:
        shown = service.offers_of(link=link)
    except JetbridgeError as exc:
        return _error_page(exc)
    notices = "".join(f"<p>{html.escape(n['message']['subject'])}</p>" for n in shown["notices"])
    if shown["status"] != "waiting" or shown["chosen"] is not None:
        body = f"<h2>Your booking</h2>{notices}<p id='status'>{html.escape(shown['status'])}</p>"
        return HTMLResponse(_page("your trip", body))
    rows = "".join(
        f"<tr><td>{html.escape(o['flight'])}</td><td>{o['origin']}-{o['destination']}"
        f"{' via ' + html.escape(o['via']) if o.get('via') else ''}</td>"
        f"<td>{html.escape(o['departure'])}</td><td>{html.escape(o['cabin'])}</td>"
        f"<td>{_choice_form(link, 'accept', 'Take this flight', o['offer'])}</td></tr>"
        for o in shown["offers"]
    )
    by = datetime.fromtimestamp(shown["choose_by"] or 0, UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = (
        f"<h2>Your flight is disrupted</h2>{notices}"
        f"<table id='offers'><tr><th>Flight</th><th>Route</th><th>Departs (UTC)</th>"
        f"<th>Cabin</th><th></th></tr>{rows}</table>"
        f"<p>Choose by {by}; without an answer the first flight is kept.</p>"
        f"{_choice_form(link, 'refund', 'Refund my ticket instead')}"
    )
    return HTMLResponse(_page("choose a flight", body))


@router.post("/disruption/choose", response_class=HTMLResponse, include_in_schema=False)
def choice_submit(
    service: DisruptionDep,
    _: PublicForm,
    link: Annotated[str, Form(min_length=1, max_length=MAX_LINK_CHARS)],
    action: Annotated[str, Form(pattern=r"^(accept|refund)$")],
    offer: Annotated[int | None, Form(ge=0, le=63)] = None,
) -> HTMLResponse:
    """The page's form; the signed link in it is what a forged form cannot have."""
    try:
        done = service.choose(link=link, action=action, offer=offer)
    except JetbridgeError as exc:
        return _error_page(exc)
    what = (
        "Thank you: we are rebooking you and will send your new ticket."
        if done["action"] == "accept"
        else "Thank you: your booking is cancelled and the fare is refunded in full."
    )
    return HTMLResponse(_page("thank you", f"<p id='done'>{what}</p>"))


_STATUS = ((InvalidRequest, 400), (Forbidden, 403), (NotFound, 404), (Conflict, 409))


def _error_page(exc: JetbridgeError) -> HTMLResponse:
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)
    body = f"<p class='error' id='error'>{html.escape(str(exc))}</p>"
    return HTMLResponse(_page("link", body), status_code=status)


@router.get("/ops/disruptions", response_class=HTMLResponse, include_in_schema=False)
def operations_page(service: DisruptionDep, caller: Agent) -> str:
    """The operations view as a page: each disrupted flight and its passengers' counts."""
    flights = service.flights(airline=_airline_of(caller, None))
    rows = "".join(
        f"<tr><td>{html.escape(f['flight_key'])}</td>"
        f"<td>{html.escape('; '.join(k['summary'] for k in f['kinds']))}</td>"
        + "".join(
            f"<td>{f['counts'][name]}</td>"
            for name in ("affected", "notified", "rebooked", "refunded", "waiting")
        )
        + "</tr>"
        for f in flights
    )
    body = (
        "<h2>Disrupted flights</h2><table id='disruptions'><tr><th>Flight</th><th>What</th>"
        "<th>Affected</th><th>Notified</th><th>Rebooked</th><th>Refunded</th><th>Waiting</th>"
        f"</tr>{rows}</table>"
    )
    return _page("disrupted flights", body)
