"""The disruption records: affected bookings of a hub flight, their cases, the notices sent and
the passengers' contacts (sealed like the rest of a booking's personal data)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from jetbridge.booking.personal_data import PersonalData
from jetbridge.disruption.policy import REACCOMMODATE
from jetbridge.errors import Conflict
from jetbridge.storage.schema import (
    booking_contacts,
    disruption_cases,
    disruption_notices,
    disruptions,
)

CONTACTS = "contacts"
CASE_STATUSES = ("affected", "waiting", "rebooked", "refunded", "superseded")


def upsert(conn: Connection, table: Any, keys: dict[str, Any], values: dict[str, Any]) -> None:
    """Insert the row, or update it where it exists (one statement on both databases)."""
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(table).values(**keys, **values)
    conn.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=values))


# --- contacts ---------------------------------------------------------------------------


def set_contacts(
    conn: Connection, personal: PersonalData, *, booking_id: str, contacts: dict[str, str]
) -> None:
    sealed = personal.seal(booking_id, CONTACTS, contacts)
    upsert(
        conn,
        booking_contacts,
        {"booking_id": booking_id},
        {"contacts": sealed, "updated_at": time.time()},
    )


def contacts_of(conn: Connection, personal: PersonalData, *, booking_id: str) -> dict[str, str]:
    sealed = conn.execute(
        select(booking_contacts.c.contacts).where(booking_contacts.c.booking_id == booking_id)
    ).scalar()
    return {} if sealed is None else dict(personal.open(booking_id, CONTACTS, sealed))


def contacts_of_many(
    conn: Connection, personal: PersonalData, *, booking_ids: Sequence[str]
) -> dict[str, dict[str, str]]:
    """The contacts of each of the bookings that has some, read in one query."""
    rows = conn.execute(
        select(booking_contacts.c.booking_id, booking_contacts.c.contacts).where(
            booking_contacts.c.booking_id.in_(list(booking_ids))
        )
    ).all()
    return {row[0]: dict(personal.open(row[0], CONTACTS, row[1])) for row in rows}


# --- cases ------------------------------------------------------------------------------


def open_case(
    conn: Connection, *, flight_key: str, booking_id: str, kind: str, airline: str
) -> None:
    """The booking is affected by the flight's disruption (kept if already open; a case of a
    flight that is now cancelled takes that kind, as it now needs re-accommodation)."""
    exists = conn.execute(
        select(disruption_cases.c.status).where(
            disruption_cases.c.flight_key == flight_key,
            disruption_cases.c.booking_id == booking_id,
        )
    ).first()
    if exists is not None and kind in REACCOMMODATE and exists.status == "affected":
        set_case(conn, flight_key=flight_key, booking_id=booking_id, kind=kind)
    if exists is None:
        conn.execute(
            insert(disruption_cases).values(
                flight_key=flight_key,
                booking_id=booking_id,
                kind=kind,
                airline=airline,
                status="affected",
                updated_at=time.time(),
            )
        )


def set_cases(conn: Connection, *, flight_key: str, changes: Sequence[dict[str, Any]]) -> None:
    """Update several of the flight's cases in one round trip: each change names its
    `booking_id` and carries the same columns as the others."""
    if not changes:
        return
    columns = [key for key in changes[0] if key != "booking_id"]
    statement = (
        update(disruption_cases)
        .where(
            disruption_cases.c.flight_key == bindparam("case_flight"),
            disruption_cases.c.booking_id == bindparam("case_booking"),
        )
        .values(
            updated_at=bindparam("case_updated_at"),
            **{key: bindparam(f"case_{key}") for key in columns},
        )
    )
    now = time.time()
    conn.execute(
        statement,
        [
            {
                "case_flight": flight_key,
                "case_booking": change["booking_id"],
                "case_updated_at": now,
                **{f"case_{key}": change[key] for key in columns},
            }
            for change in changes
        ],
    )


def set_case(conn: Connection, *, flight_key: str, booking_id: str, **values: Any) -> None:
    conn.execute(
        update(disruption_cases)
        .where(
            disruption_cases.c.flight_key == flight_key,
            disruption_cases.c.booking_id == booking_id,
        )
        .values(updated_at=time.time(), **values)
    )


def supersede_others(conn: Connection, *, booking_id: str, flight_key: str) -> list[str]:
    """The booking was settled through this flight's case: its other open cases (another
    disruption of the same trip) have nothing left to do. The task tokens they wait with."""
    others = and_(
        disruption_cases.c.booking_id == booking_id,
        disruption_cases.c.flight_key != flight_key,
        disruption_cases.c.status.in_(["affected", "waiting"]),
    )
    tokens = conn.execute(select(disruption_cases.c.task_token).where(others)).scalars()
    waiting = [str(token) for token in tokens if token]
    conn.execute(
        update(disruption_cases).where(others).values(status="superseded", updated_at=time.time())
    )
    return waiting


def get_cases(
    conn: Connection, *, flight_key: str, booking_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The flight's cases of these bookings, by booking, read in one query."""
    rows = conn.execute(
        select(disruption_cases).where(
            disruption_cases.c.flight_key == flight_key,
            disruption_cases.c.booking_id.in_(list(booking_ids)),
        )
    ).mappings()
    return {row["booking_id"]: _case(dict(row)) for row in rows}


def mark_notified(
    conn: Connection, *, flight_key: str, booking_ids: Sequence[str], at: float
) -> None:
    """The bookings' passengers were sent a notice of this flight's disruption at `at`."""
    if booking_ids:
        conn.execute(
            update(disruption_cases)
            .where(
                disruption_cases.c.flight_key == flight_key,
                disruption_cases.c.booking_id.in_(list(booking_ids)),
            )
            .values(notified_at=at, updated_at=at)
        )


def get_case(conn: Connection, *, flight_key: str, booking_id: str) -> dict[str, Any] | None:
    row = (
        conn.execute(
            select(disruption_cases).where(
                disruption_cases.c.flight_key == flight_key,
                disruption_cases.c.booking_id == booking_id,
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else _case(dict(row))


def _case(found: dict[str, Any]) -> dict[str, Any]:
    found["offers"] = json.loads(found["offers"]) if found["offers"] else []
    found["choice"] = json.loads(found["choice"]) if found["choice"] else None
    return found


def record_choice(
    conn: Connection, *, flight_key: str, booking_id: str, choice: dict[str, Any]
) -> str | None:
    """Keep the passenger's one answer; the task token waiting for it, if one does yet.
    Conflict if an answer was recorded before (the link was used already)."""
    recorded = conn.execute(
        update(disruption_cases)
        .where(
            disruption_cases.c.flight_key == flight_key,
            disruption_cases.c.booking_id == booking_id,
            disruption_cases.c.status == "waiting",
            disruption_cases.c.choice.is_(None),
        )
        .values(choice=json.dumps(choice), updated_at=time.time())
    )
    if recorded.rowcount == 0:
        raise Conflict("link: this choice was made already")
    token = conn.execute(
        select(disruption_cases.c.task_token).where(
            disruption_cases.c.flight_key == flight_key,
            disruption_cases.c.booking_id == booking_id,
        )
    ).scalar()
    return None if token is None else str(token)


def cases_of_booking(conn: Connection, *, booking_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(disruption_cases.c.flight_key)
        .where(disruption_cases.c.booking_id == booking_id)
        .order_by(disruption_cases.c.updated_at)
    )
    found = [get_case(conn, flight_key=key, booking_id=booking_id) for key in rows.scalars()]
    return [case_ for case_ in found if case_ is not None]


# --- notices ----------------------------------------------------------------------------


def record_notices(conn: Connection, notices: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """Keep several notices (each with notice_id, booking_id, flight_key, kind and message)
    in two statements; the ones not recorded before, in their order."""
    ids = [notice["notice_id"] for notice in notices]
    known = set(
        conn.execute(
            select(disruption_notices.c.notice_id).where(disruption_notices.c.notice_id.in_(ids))
        ).scalars()
    )
    fresh: dict[str, dict[str, str]] = {}
    for notice in notices:
        if notice["notice_id"] not in known:
            fresh.setdefault(notice["notice_id"], notice)
    if fresh:
        now = time.time()
        conn.execute(
            insert(disruption_notices), [{**notice, "created_at": now} for notice in fresh.values()]
        )
    return list(fresh.values())


def notices_of(conn: Connection, *, booking_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(disruption_notices)
        .where(disruption_notices.c.booking_id == booking_id)
        .order_by(disruption_notices.c.created_at)
    ).mappings()
    return [
        {
            "flight_key": row["flight_key"],
            "kind": row["kind"],
            "message": row["message"],
            "at": row["created_at"],
        }
        for row in rows
    ]


# --- the operations view ------------------------------------------------------------------


def disrupted_flights(conn: Connection, *, airline: str | None, limit: int) -> list[dict[str, Any]]:
    """Each disrupted flight (of `airline`, or all) with its cases counted by status."""
    query = (
        select(disruptions)
        .where(disruptions.c.execution != "")
        .order_by(disruptions.c.updated_at.desc())
        .limit(limit)
    )
    if airline is not None:
        query = query.where(disruptions.c.airline == airline)
    flights: dict[str, dict[str, Any]] = {}
    for row in conn.execute(query).mappings():
        entry = flights.setdefault(
            row["flight_key"],
            {"flight_key": row["flight_key"], "airline": row["airline"], "kinds": []},
        )
        entry["kinds"].append(
            {"kind": row["kind"], "summary": row["summary"], "version": row["version"]}
        )
    for key, entry in flights.items():
        entry["counts"] = case_counts(conn, flight_key=key)
    return list(flights.values())


def case_counts(conn: Connection, *, flight_key: str) -> dict[str, int]:
    notified = func.sum(case((disruption_cases.c.notified_at.is_not(None), 1), else_=0))
    row = conn.execute(
        select(func.count(), notified).where(disruption_cases.c.flight_key == flight_key)
    ).one()
    by_status: dict[str, int] = dict(
        conn.execute(
            select(disruption_cases.c.status, func.count())
            .where(disruption_cases.c.flight_key == flight_key)
            .group_by(disruption_cases.c.status)
        ).all()
    )
    return {
        "affected": int(row[0]),
        "notified": int(row[1] or 0),
        "rebooked": int(by_status.get("rebooked", 0)),
        "refunded": int(by_status.get("refunded", 0)),
        "waiting": int(by_status.get("waiting", 0)),
    }
