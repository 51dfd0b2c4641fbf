"""Archives (events matching a pattern, kept for a retention period) and replays into a bus."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from jetbridge.errors import Conflict, InvalidRequest, NotFound
from jetbridge.events.envelope import InvalidEvent, cloud_event_from_json, parse_time
from jetbridge.events.patterns import InvalidEventPattern, parse_pattern
from jetbridge.events.publish import Publisher
from jetbridge.events.registry import get_bus
from jetbridge.events.routing import bump_version
from jetbridge.events.specs import ArchiveSpec, ReplaySpec
from jetbridge.storage.schema import archive_events, archives, replays

REPLAY_BATCH = 500


def create_archive(conn: Connection, *, spec: ArchiveSpec) -> dict[str, Any]:
    get_bus(conn, name=spec.bus)
    if _archive_row(conn, spec.name) is not None:
        raise Conflict(f"archive {spec.name!r} already exists")
    pattern = None
    if spec.event_pattern is not None:
        raw = spec.event_pattern
        pattern = raw if isinstance(raw, str) else json.dumps(raw, separators=(",", ":"))
        try:
            parse_pattern(pattern)
        except InvalidEventPattern as exc:
            raise InvalidRequest(f"event_pattern: {exc}") from None
    conn.execute(
        insert(archives).values(
            name=spec.name,
            bus=spec.bus,
            pattern=pattern,
            retention_days=spec.retention_days,
            description=spec.description,
            created_at=time.time(),
        )
    )
    bump_version(conn, spec.bus)
    return get_archive(conn, name=spec.name)


def get_archive(conn: Connection, *, name: str) -> dict[str, Any]:
    row = _archive_row(conn, name)
    if row is None:
        raise NotFound(f"archive {name!r} does not exist")
    count = conn.execute(select(func.count()).where(archive_events.c.archive == name)).scalar_one()
    return {
        "name": row.name,
        "bus": row.bus,
        "event_pattern": json.loads(row.pattern) if row.pattern else None,
        "retention_days": row.retention_days,
        "description": row.description,
        "created_at": row.created_at,
        "event_count": count,
    }


def list_archives(conn: Connection) -> list[dict[str, Any]]:
    names = conn.execute(select(archives.c.name).order_by(archives.c.name)).scalars()
    return [get_archive(conn, name=name) for name in names]


def delete_archive(conn: Connection, *, name: str) -> None:
    row = _archive_row(conn, name)
    if row is None:
        raise NotFound(f"archive {name!r} does not exist")
    conn.execute(delete(archive_events).where(archive_events.c.archive == name))
    conn.execute(delete(archives).where(archives.c.name == name))
    bump_version(conn, row.bus)


def purge_expired(conn: Connection, *, now: float) -> int:
    """Drop archived events older than their archive's retention (0 keeps them forever)."""
    removed = 0
    for row in conn.execute(select(archives).where(archives.c.retention_days > 0)).all():
        cutoff = now - row.retention_days * 86400
        result = conn.execute(
            delete(archive_events).where(
                archive_events.c.archive == row.name, archive_events.c.archived_at < cutoff
            )
        )
        removed += result.rowcount
    return removed


def _archive_row(conn: Connection, name: str) -> Any:
    return conn.execute(select(archives).where(archives.c.name == name)).first()


def start_replay(conn: Connection, *, spec: ReplaySpec) -> dict[str, Any]:
    """Register a replay of [start_time, end_time) from an archive; a worker runs it."""
    archive = _archive_row(conn, spec.archive)
    if archive is None:
        raise NotFound(f"archive {spec.archive!r} does not exist")
    get_bus(conn, name=spec.destination_bus)
    if archive.bus != spec.destination_bus:
        raise InvalidRequest(
            f"destination_bus: a replay goes to its archive's own bus {archive.bus!r}"
        )
    try:
        start = parse_time(spec.start_time, "start_time").timestamp()
        end = parse_time(spec.end_time, "end_time").timestamp()
    except InvalidEvent as exc:
        raise InvalidRequest(str(exc)) from None
    if end <= start:
        raise InvalidRequest("end_time: must be after start_time")
    if end > time.time() + 60:
        raise InvalidRequest("end_time: must not be in the future")
    if conn.execute(select(replays.c.name).where(replays.c.name == spec.name)).first():
        raise Conflict(f"replay {spec.name!r} already exists")
    conn.execute(
        insert(replays).values(
            name=spec.name,
            archive=spec.archive,
            destination_bus=spec.destination_bus,
            rules=json.dumps(spec.rules) if spec.rules is not None else None,
            start_time=start,
            end_time=end,
            state="STARTING",
            created_at=time.time(),
        )
    )
    return get_replay(conn, name=spec.name)


def get_replay(conn: Connection, *, name: str) -> dict[str, Any]:
    row = conn.execute(select(replays).where(replays.c.name == name)).first()
    if row is None:
        raise NotFound(f"replay {name!r} does not exist")
    return _replay_dict(row)


def list_replays(conn: Connection) -> list[dict[str, Any]]:
    return [
        _replay_dict(row) for row in conn.execute(select(replays).order_by(replays.c.created_at))
    ]


def cancel_replay(conn: Connection, *, name: str) -> dict[str, Any]:
    replay = get_replay(conn, name=name)
    if replay["state"] in {"COMPLETED", "CANCELLED", "FAILED"}:
        raise Conflict(f"replay {name!r} has already finished ({replay['state']})")
    conn.execute(
        update(replays)
        .where(replays.c.name == name)
        .values(state="CANCELLED", finished_at=time.time())
    )
    return get_replay(conn, name=name)


def _replay_dict(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "archive": row.archive,
        "destination_bus": row.destination_bus,
        "rules": json.loads(row.rules) if row.rules else None,
        "start_time": row.start_time,
        "end_time": row.end_time,
        "state": row.state,
        "state_reason": row.state_reason,
        "events_replayed": row.events_replayed,
        "created_at": row.created_at,
        "finished_at": row.finished_at,
    }


def advance_replays(engine: Engine, publisher: Publisher) -> int:
    """Replay one batch of every unfinished replay; progress commits with the events it sent."""
    with engine.connect() as conn:
        active = (
            conn.execute(select(replays.c.name).where(replays.c.state.in_(["STARTING", "RUNNING"])))
            .scalars()
            .all()
        )
    sent = 0
    for name in active:
        with engine.begin() as conn:
            sent += _replay_batch(conn, publisher, name)
    return sent


def _replay_batch(conn: Connection, publisher: Publisher, name: str) -> int:
    row = conn.execute(select(replays).where(replays.c.name == name)).first()
    if row is None or row.state not in {"STARTING", "RUNNING"}:
        return 0
    batch = conn.execute(
        select(archive_events.c.id, archive_events.c.body)
        .where(
            archive_events.c.archive == row.archive,
            archive_events.c.id > row.cursor,
            archive_events.c.event_time >= row.start_time,
            archive_events.c.event_time < row.end_time,
        )
        .order_by(archive_events.c.id)
        .limit(REPLAY_BATCH)
    ).all()
    if not batch:
        conn.execute(
            update(replays)
            .where(replays.c.name == name)
            .values(state="COMPLETED", finished_at=time.time())
        )
        return 0
    replayed = [cloud_event_from_json(body).with_replay(name) for _, body in batch]
    only = json.loads(row.rules) if row.rules else None
    publisher.publish(conn, bus=row.destination_bus, events=replayed, only_rules=only)
    conn.execute(
        update(replays)
        .where(replays.c.name == name)
        .values(
            state="RUNNING",
            cursor=batch[-1][0],
            events_replayed=replays.c.events_replayed + len(batch),
        )
    )
    return len(batch)
