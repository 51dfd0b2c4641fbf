"""Change capture from any SQL database SQLAlchemy reaches, by a watermark on a change column.

Every poll re-reads a window of `lag_seconds` behind the watermark, so a row whose transaction
committed late (its change time is earlier than rows already read) is still seen; rows seen
before are recognised by (key, row version) and skipped. The position survives restarts.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, Table, select
from sqlalchemy.exc import DBAPIError

from jetbridge.storage.transient import is_transient

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
IDENTITY_FIELDS = (
    "airline",
    "flight_number",
    "origin_date",
    "departure_airport",
    "arrival_airport",
)
# What a deleted legacy row does to its flight: cancel it, remove it from the hub, nothing, or
# (a resource allocation) clear the resource it allocated.
ON_DELETE = ("cancel", "remove", "ignore", "clear")


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
    on_delete: str = "cancel"
    flight: FlightLink | None = None
    resource: ResourceMapping | None = None

    def columns(self) -> set[str]:
        """The legacy columns this mapping reads (identity constants are not columns)."""
        used = {self.primary_key, self.changed_at, *self.fields.values()}
        used |= self.essential()
        if self.row_version:
            used.add(self.row_version)
        if self.resource:
            used |= {self.resource.type_column, self.resource.code_column}
        return used

    def essential(self) -> set[str]:
        """Columns without which no row can be captured: key, change time, the flight."""
        needed = {self.primary_key, self.changed_at}
        if self.flight is not None:
            return needed | {self.flight.key_column}
        return needed | {c for c in self.identity.values() if not c.startswith("=")}

    def without(self, missing: set[str]) -> TableMapping:
        """This mapping minus fields whose columns the table no longer has."""
        kept = {name: column for name, column in self.fields.items() if column not in missing}
        return replace(self, fields=kept)

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
        flight = FlightLink.from_dict(raw["flight"], where) if "flight" in raw else None
        resource = ResourceMapping.from_dict(raw["resource"], where) if "resource" in raw else None
        missing = sorted(set(IDENTITY_FIELDS) - set(identity))
        if missing and flight is None:
            raise InvalidMapping(f"{where}: identity.{missing[0]} is required")
        for name, column in identity.items():
            if not isinstance(column, str) or not (
                column.startswith("=") or IDENTIFIER.match(column)
            ):
                raise InvalidMapping(f"{where}: identity.{name} must be a column name or =CONSTANT")
        fields = raw.get("fields", {})
        for name, column in fields.items():
            if not isinstance(column, str) or not IDENTIFIER.match(column):
                raise InvalidMapping(f"{where}: fields.{name} must be a column name")
        on_delete = source.get("on_delete", "cancel")
        if on_delete not in ON_DELETE:
            raise InvalidMapping(
                f"{where}: source.on_delete {on_delete!r}: use one of {', '.join(ON_DELETE)}"
            )
        if on_delete == "clear" and resource is None:
            raise InvalidMapping(f"{where}: source.on_delete 'clear' needs a [resource] section")
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
            on_delete=on_delete,
            flight=flight,
            resource=resource,
        )


@dataclass(frozen=True, slots=True)
class FlightLink:
    """A table whose rows name their flight by another capture source's row key (a resource
    allocation table pointing at the movements table)."""

    source: str
    key_column: str

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> FlightLink:
        if not isinstance(raw, dict) or not isinstance(raw.get("source"), str):
            raise InvalidMapping(f"{where}: flight.source must name a capture source")
        key = raw.get("key")
        if not isinstance(key, str) or not IDENTIFIER.match(key):
            raise InvalidMapping(f"{where}: flight.key must be a column name")
        return cls(raw["source"], key)


@dataclass(frozen=True, slots=True)
class ResourceMapping:
    """One row allocates one resource: its type column says which field its code feeds."""

    type_column: str
    code_column: str
    fields: dict[str, str]

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> ResourceMapping:
        if not isinstance(raw, dict):
            raise InvalidMapping(f"{where}: [resource] must be a table")
        for key in ("type", "code"):
            if not isinstance(raw.get(key), str) or not IDENTIFIER.match(raw[key]):
                raise InvalidMapping(f"{where}: resource.{key} must be a column name")
        fields = raw.get("fields")
        if not isinstance(fields, dict) or not fields:
            raise InvalidMapping(f"{where}: resource.fields must map resource types to fields")
        for kind, name in fields.items():
            if not isinstance(name, str):
                raise InvalidMapping(f"{where}: resource.fields.{kind} must be a field name")
        return cls(raw["type"], raw["code"], dict(fields))

    def field(self, row: Mapping[str, Any]) -> str | None:
        kind = row.get(self.type_column)
        return None if kind is None else self.fields.get(str(kind).strip())


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
    deleted: bool = False
    on_delete: str = "cancel"
    via: tuple[str, str] | None = None  # (capture source, its row key) naming the flight
    clears: tuple[str, ...] = ()


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
        self.watch = ColumnWatch(mapping)
        self._table: Table | None = None

    def table(self) -> Table:
        """The legacy table as it is now; a column gone since the last look is reported (and
        its field no longer read), one the mapping cannot do without stops capture with a
        clear error until the table or the mapping is fixed."""
        if self._table is None:
            metadata = MetaData()
            table = Table(self.mapping.table, metadata, autoload_with=self.engine)
            self.watch.observe(table.c.keys())
            self.watch.require()
            self._table = table
        return self._table

    def poll(self, position: Position) -> tuple[list[RowChange], Position]:
        """Changes after `position` (re-reading the lag window) and the position after them."""
        try:
            return self._poll(position)
        except DBAPIError as exc:
            if self._table is None or is_transient(exc):
                raise
            self._table = None  # the table may have changed under us: look again
            return self._poll(position)

    def _poll(self, position: Position) -> tuple[list[RowChange], Position]:
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
        return translate(self.watch.effective, row, stamp)


class SchemaChanged(RuntimeError):
    """The legacy table lost a column the mapping cannot do without (key, change time,
    identity); capture waits until the table or the mapping is fixed."""


class ColumnWatch:
    """Notices when a legacy table's columns change and says what changed, once.

    Fields whose columns disappeared are dropped from the effective mapping (the rest of the row
    is still captured); `notices` collects the reports for the ingest log."""

    def __init__(self, mapping: TableMapping) -> None:
        self.mapping = mapping
        self.effective = mapping
        self.known: frozenset[str] | None = None
        self.notices: list[str] = []

    def observe(self, columns: Iterable[str]) -> None:
        seen = frozenset(columns)
        if seen == self.known:
            return
        needed = self.mapping.columns()
        missing = needed - seen
        if self.known is not None:
            added, gone = sorted(seen - self.known), sorted(self.known - seen)
            parts = [f"new column {c}" for c in added] + [f"column {c} gone" for c in gone]
            if parts:
                self.notices.append(f"table {self.mapping.table} changed: {', '.join(parts)}")
        if missing:
            self.notices.append(
                f"table {self.mapping.table} has no column {', '.join(sorted(missing))} "
                "that the mapping names; those fields are not captured"
            )
        self.known = seen
        self.effective = self.mapping.without(missing)

    def require(self) -> None:
        """SchemaChanged if a column capture cannot do without is missing."""
        assert self.known is not None
        lost = sorted(self.mapping.essential() - self.known)
        if lost:
            raise SchemaChanged(
                f"table {self.mapping.table} has no column {lost[0]!r}, which the mapping needs "
                "(key, change time or flight identity)"
            )

    def drain(self) -> list[str]:
        notices, self.notices = self.notices, []
        return notices


def identity_of(mapping: TableMapping, row: Mapping[str, Any]) -> dict[str, Any]:
    """The flight identity a row names ({} if it lacks an identity value, as the key-only
    image of a deleted row does)."""
    identity: dict[str, Any] = {}
    for name, column in mapping.identity.items():
        if column.startswith("="):
            identity[name] = column[1:]
        elif row.get(column) is not None:
            identity[name] = row[column]
        else:
            return {}
    return identity


def translate(
    mapping: TableMapping, row: Mapping[str, Any], stamp: datetime, *, deleted: bool = False
) -> RowChange:
    """Rename a legacy row's columns to canonical fields and map coded values."""
    if mapping.primary_key not in row:
        raise SchemaChanged(f"a row of {mapping.table} has no key column {mapping.primary_key!r}")
    identity = identity_of(mapping, row)
    fields: dict[str, Any] = {}
    for name, column in mapping.fields.items():
        if deleted:
            break
        value = row.get(column)
        mapped = mapping.values.get(name)
        if mapped is not None and value is not None:
            value = mapped.get(str(value), value)
        if isinstance(value, datetime):
            value = _aware(value)
        fields[name] = value
    version = row.get(mapping.row_version) if mapping.row_version else None
    via = clears = None
    if mapping.flight is not None and row.get(mapping.flight.key_column) is not None:
        via = (mapping.flight.source, str(row[mapping.flight.key_column]))
    if mapping.resource is not None:
        resource = mapping.resource.field(row)
        if resource is not None and deleted:
            clears = (resource,)
        elif resource is not None:
            fields[resource] = row.get(mapping.resource.code_column)
    return RowChange(
        mapping.name,
        row[mapping.primary_key],
        stamp,
        version,
        identity,
        fields,
        deleted=deleted,
        on_delete=mapping.on_delete,
        via=via,
        clears=clears or (),
    )


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)
