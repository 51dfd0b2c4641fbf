"""Low-latency change capture from PostgreSQL logical decoding (the built-in `pgoutput` plugin).

Changes are peeked from a replication slot over a normal SQL connection and the slot is advanced
only after the caller has applied them, so a crash in between replays them instead of losing them.
Needs `wal_level = logical` on the source server.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text

from jetbridge.aodb.cdc import RowChange, TableMapping, translate

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_INTS = {20, 21, 23, 26}
_FLOATS = {700, 701}


class DecodeError(ValueError):
    """A pgoutput message could not be decoded (names the message kind and offset)."""


@dataclass
class Relation:
    schema: str
    name: str
    columns: list[tuple[str, int]]


@dataclass
class Reader:
    data: bytes
    offset: int = 0

    def take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise DecodeError(f"message truncated at offset {self.offset}")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def int8(self) -> int:
        return int(self.take(1)[0])

    def int16(self) -> int:
        return int(struct.unpack("!h", self.take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack("!i", self.take(4))[0])

    def int64(self) -> int:
        return int(struct.unpack("!q", self.take(8))[0])

    def string(self) -> str:
        end = self.data.index(b"\x00", self.offset)
        value = self.data[self.offset : end].decode()
        self.offset = end + 1
        return value


def convert(value: str | None, type_oid: int) -> Any:
    """Text form of a column value to Python, for the types legacy tables use."""
    if value is None:
        return None
    if type_oid in _INTS:
        return int(value)
    if type_oid in _FLOATS:
        return float(value)
    if type_oid == 1700:
        return Decimal(value)
    if type_oid == 16:
        return value == "t"
    if type_oid == 1114:
        return datetime.fromisoformat(value)
    if type_oid == 1184:
        return datetime.fromisoformat(value).astimezone(UTC)
    return value


@dataclass
class PgOutputDecoder:
    """Turns pgoutput messages into (relation name, row dict, commit time) triples."""

    relations: dict[int, Relation] = field(default_factory=dict)
    commit_time: datetime | None = None

    def decode(self, message: bytes) -> tuple[str, dict[str, Any]] | None:
        reader = Reader(message)
        kind = chr(reader.int8())
        if kind == "B":
            reader.int64()
            self.commit_time = PG_EPOCH + timedelta(microseconds=reader.int64())
            return None
        if kind == "R":
            self._relation(reader)
            return None
        if kind in {"I", "U"}:
            return self._row(reader, kind)
        return None

    def _relation(self, reader: Reader) -> None:
        relid = reader.int32()
        schema, name = reader.string(), reader.string()
        reader.int8()
        columns = []
        for _ in range(reader.int16()):
            reader.int8()
            column = reader.string()
            type_oid = reader.int32()
            reader.int32()
            columns.append((column, type_oid))
        self.relations[relid] = Relation(schema, name, columns)

    def _row(self, reader: Reader, kind: str) -> tuple[str, dict[str, Any]]:
        relid = reader.int32()
        relation = self.relations.get(relid)
        if relation is None:
            raise DecodeError(f"{kind} message for unknown relation {relid}")
        marker = chr(reader.int8())
        if kind == "U" and marker in {"K", "O"}:
            self._tuple(reader, relation)
            marker = chr(reader.int8())
        if marker != "N":
            raise DecodeError(f"{kind} message: expected new tuple, got {marker!r}")
        return relation.name, self._tuple(reader, relation)

    @staticmethod
    def _tuple(reader: Reader, relation: Relation) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name, type_oid in relation.columns[: reader.int16()]:
            flag = chr(reader.int8())
            if flag == "t":
                row[name] = convert(reader.take(reader.int32()).decode(), type_oid)
            elif flag == "n":
                row[name] = None
            elif flag != "u":
                raise DecodeError(f"column {name}: unsupported tuple flag {flag!r}")
        return row


class PgLogicalCapture:
    """Peek-apply-advance over a pgoutput replication slot for one mapped table."""

    def __init__(
        self, engine: Engine, mapping: TableMapping, *, slot: str = "jetbridge_cdc"
    ) -> None:
        self.engine = engine
        self.mapping = mapping
        self.slot = slot
        self.publication = f"{slot}_pub"
        self.decoder = PgOutputDecoder()

    def ensure_slot(self) -> None:
        """Create the publication and the slot if they do not exist yet."""
        with self.engine.begin() as conn:
            if not conn.execute(
                text("SELECT 1 FROM pg_publication WHERE pubname = :p"), {"p": self.publication}
            ).first():
                conn.execute(
                    text(
                        f'CREATE PUBLICATION "{self.publication}" FOR TABLE "{self.mapping.table}"'
                    )
                )
        with self.engine.begin() as conn:
            if not conn.execute(
                text("SELECT 1 FROM pg_replication_slots WHERE slot_name = :s"), {"s": self.slot}
            ).first():
                conn.execute(
                    text("SELECT pg_create_logical_replication_slot(:s, 'pgoutput')"),
                    {"s": self.slot},
                )

    def peek(self, *, limit: int = 2000) -> tuple[list[RowChange], str | None]:
        """Changes not yet acknowledged, and the position to acknowledge once they are applied."""
        query = text(
            "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes("
            ":slot, NULL, :limit, 'proto_version', '1', 'publication_names', :pub)"
        )
        with self.engine.connect() as conn:
            rows = conn.execute(
                query, {"slot": self.slot, "limit": limit, "pub": self.publication}
            ).all()
        self.decoder = PgOutputDecoder()
        changes: list[RowChange] = []
        last_lsn = None
        for lsn, data in rows:
            last_lsn = lsn
            decoded = self.decoder.decode(bytes(data))
            if decoded is None or decoded[0] != self.mapping.table:
                continue
            row = decoded[1]
            stamp = (
                row.get(self.mapping.changed_at) or self.decoder.commit_time or datetime.now(UTC)
            )
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=UTC)
            changes.append(translate(self.mapping, row, stamp))
        return changes, last_lsn

    def acknowledge(self, lsn: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text("SELECT pg_replication_slot_advance(:s, CAST(:l AS pg_lsn))"),
                {"s": self.slot, "l": lsn},
            )

    def drop(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(text("SELECT pg_drop_replication_slot(:s)"), {"s": self.slot})
            conn.execute(text(f'DROP PUBLICATION IF EXISTS "{self.publication}"'))
