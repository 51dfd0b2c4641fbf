"""Change capture from any SQL database SQLAlchemy reaches, by a watermark on a change column.

Every poll re-reads a window of `lag_seconds` behind the watermark, so a row whose transaction
committed late (its change time is earlier than rows already read) is still seen; rows seen
before are recognised by (key, row version) and skipped. The position survives restarts.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, Table, select

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class InvalidMapping(ValueError):
    """A mapping file is incomplete or names something that does not exist."""


@dataclass(frozen=True, slots=True)
class TableMapping:
    name: str
    table: str
    primary_key: str
    changed_at: str
    row_version: str | None
    lag_seconds: float
    identity: dict[str, str]
    fields: dict[str, str]
    values: dict[str, dict[str, str]]

    @classmethod
    def load(cls, path: Path) -> TableMapping:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InvalidMapping(f"{path}: {exc}") from None
        return cls.from_dict(raw, where=str(path))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, where: str = "mapping") -> TableMapping:
        source = raw.get("source")
        if not isinstance(source, dict):
            raise InvalidMapping(f"{where}: [source] section is required")
        for key in ("name", "table", "primary_key", "changed_at"):
            if not isinstance(source.get(key), str):
                raise InvalidMapping(f"{where}: source.{key} must be a string")
        for key in ("table", "primary_key", "changed_at"):
            if not IDENTIFIER.match(source[key]):
                raise InvalidMapping(f"{where}: source.{key} {source[key]!r} is not an identifier")
        identity = raw.get("identity", {})
        needed = {"airline", "flight_number", "origin_date", "departure_airport", "arrival_airport"}
        missing = sorted(needed - set(identity))
        if missing:
            raise InvalidMapping(f"{where}: identity.{missing[0]} is required")
        return cls(
            name=source["name"],
            table=source["table"],
            primary_key=source["primary_key"],
            changed_at=source["changed_at"],
            row_version=source.get("row_version"),
            lag_seconds=float(source.get("lag_seconds", 2.0)),
            identity=dict(identity),
            fields=dict(raw.get("fields", {})),
            values={k: dict(v) for k, v in raw.get("values", {}).items()},
        )


DEFAULT_MAPPING = Path(__file__).with_name("mapping.toml")


@dataclass(frozen=True, slots=True)
class RowChange:
    """One changed legacy row, translated to canonical names (values still raw)."""

    source: str
    key: Any
    changed_at: datetime
    row_version: int | None
    identity: dict[str, Any]
    fields: dict[str, Any]


@dataclass
class Position:
    changed_at: datetime | None = None
    seen: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        stamp = None if self.changed_at is None else self.changed_at.isoformat()
        return json.dumps({"changed_at": stamp, "seen": self.seen})

    @classmethod
    def from_json(cls, text: str | None) -> Position:
        if not text:
            return cls()
        body = json.loads(text)
        stamp = body.get("changed_at")
        return cls(datetime.fromisoformat(stamp) if stamp else None, dict(body.get("seen", {})))


class SqlChangeCapture:
    """Polls a legacy table for rows changed since the position it holds."""

    def __init__(self, engine: Engine, mapping: TableMapping, *, batch: int = 1000) -> None:
        self.engine = engine
        self.mapping = mapping
        self.batch = batch
        self._table: Table | None = None

    def table(self) -> Table:
        if self._table is None:
            metadata = MetaData()
            self._table = Table(self.mapping.table, metadata, autoload_with=self.engine)
            columns = set(self._table.c.keys())
            used = {
                self.mapping.primary_key,
                self.mapping.changed_at,
                *self.mapping.identity.values(),
            }
            used |= set(self.mapping.fields.values())
            unknown = sorted(used - columns)
            if unknown:
                raise InvalidMapping(f"table {self.mapping.table} has no column {unknown[0]!r}")
        return self._table

    def poll(self, position: Position) -> tuple[list[RowChange], Position]:
        """Changes after `position` (re-reading the lag window) and the position after them."""
        table = self.table()
        changed = table.c[self.mapping.changed_at]
        key = table.c[self.mapping.primary_key]
        query = select(table).order_by(changed, key).limit(self.batch)
        if position.changed_at is not None:
            since = _naive(position.changed_at - timedelta(seconds=self.mapping.lag_seconds))
            query = query.where(changed >= since)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        changes: list[RowChange] = []
        seen = dict(position.seen)
        latest = position.changed_at
        for row in rows:
            stamp = _aware(row[self.mapping.changed_at])
            token = f"{row[self.mapping.primary_key]}@{self._version(row)}"
            if token in seen:
                continue
            seen[token] = stamp.timestamp()
            latest = stamp if latest is None or stamp > latest else latest
            changes.append(self._translate(row, stamp))
        if latest is not None:
            horizon = latest.timestamp() - self.mapping.lag_seconds
            seen = {token: at for token, at in seen.items() if at >= horizon}
        return changes, Position(latest, seen)

    def _version(self, row: Any) -> Any:
        if self.mapping.row_version:
            return row[self.mapping.row_version]
        return _aware(row[self.mapping.changed_at]).isoformat()

    def _translate(self, row: Any, stamp: datetime) -> RowChange:
        return translate(self.mapping, row, stamp)


def translate(mapping: TableMapping, row: Mapping[str, Any], stamp: datetime) -> RowChange:
    """Rename a legacy row's columns to canonical fields and map coded values."""
    identity = {name: row[column] for name, column in mapping.identity.items()}
    fields: dict[str, Any] = {}
    for name, column in mapping.fields.items():
        value = row.get(column)
        mapped = mapping.values.get(name)
        if mapped is not None and value is not None:
            value = mapped.get(str(value), value)
        if isinstance(value, datetime):
            value = _aware(value)
        fields[name] = value
    version = row.get(mapping.row_version) if mapping.row_version else None
    return RowChange(mapping.name, row[mapping.primary_key], stamp, version, identity, fields)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)
