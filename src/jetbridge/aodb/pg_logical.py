"""Low-latency change capture from PostgreSQL logical decoding (the built-in `pgoutput` plugin).

Changes are peeked from a replication slot over a normal SQL connection and the slot is advanced
only after the caller has applied them, so a crash in between replays them instead of losing them.
Needs `wal_level = logical` on the source server.
"""

from __future__ import annotations

import logging
import struct
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from jetbridge.aodb.cdc import ColumnWatch, RowChange, TableMapping, translate

log = logging.getLogger(__name__)
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
# Decoding restarts at the slot's restart_lsn, which PostgreSQL moves on only when it decodes a
# snapshot of the running transactions (logged every 15 s by default): until then every read and
# every advance decodes all the WAL since. One logged after an advance, at most this often,
# keeps them short (PostgreSQL 16 and later; superuser or EXECUTE on pg_log_standby_snapshot).
SNAPSHOT_EVERY = 1.0
# Why PostgreSQL may refuse to log one: no privilege, no such function (before 16), a standby.
_CANNOT_SNAPSHOT = {"42501", "42883", "55000"}
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


@dataclass(frozen=True, slots=True)
class RowMessage:
    """An inserted, updated or deleted row (a delete carries the key or the old row only)."""

    table: str
    row: dict[str, Any]
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class Commit:
    """The end of a transaction: `end_lsn` orders transactions as they committed."""

    end_lsn: int


def lsn_text(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def parse_lsn(value: str) -> int:
    """`16/B374D848` to an integer; ValueError naming the value otherwise."""
    high, sep, low = value.partition("/")
    try:
        if not sep or not 0 < len(high) <= 8 or not 0 < len(low) <= 8:
            raise ValueError
        return (int(high, 16) << 32) | int(low, 16)
    except ValueError:
        raise ValueError(
            f"LSN {value!r}: expected two hexadecimal parts like 16/B374D848"
        ) from None


@dataclass
class PgOutputDecoder:
    """Turns pgoutput messages into rows (with their relation) and commits."""

    relations: dict[int, Relation] = field(default_factory=dict)
    commit_time: datetime | None = None

    def decode(self, message: bytes) -> RowMessage | Commit | Relation | None:
        reader = Reader(message)
        kind = chr(reader.int8())
        if kind == "B":
            reader.int64()
            self.commit_time = PG_EPOCH + timedelta(microseconds=reader.int64())
            return None
        if kind == "C":
            reader.int8()
            reader.int64()
            return Commit(reader.int64())
        if kind == "R":
            return self._relation(reader)
        if kind in {"I", "U", "D"}:
            return self._row(reader, kind)
        return None

    def _relation(self, reader: Reader) -> Relation:
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
        return self.relations[relid]

    def _row(self, reader: Reader, kind: str) -> RowMessage:
        relid = reader.int32()
        relation = self.relations.get(relid)
        if relation is None:
            raise DecodeError(f"{kind} message for unknown relation {relid}")
        marker = chr(reader.int8())
        if kind == "D":
            if marker not in {"K", "O"}:
                raise DecodeError(f"D message: expected key or old tuple, got {marker!r}")
            return RowMessage(relation.name, self._tuple(reader, relation), deleted=True)
        if kind == "U" and marker in {"K", "O"}:
            self._tuple(reader, relation)
            marker = chr(reader.int8())
        if marker != "N":
            raise DecodeError(f"{kind} message: expected new tuple, got {marker!r}")
        return RowMessage(relation.name, self._tuple(reader, relation))

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
        self.watch = ColumnWatch(mapping)
        self.snapshots = True  # until the server refuses to log one for us
        self._snapshot_at = -SNAPSHOT_EVERY

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

    def peek(
        self, *, after: int | None = None, limit: int = 400
    ) -> tuple[list[RowChange], int | None, int | None]:
        """Changes of transactions that committed after `after` (an LSN; None: all the slot
        holds), the end LSN of the last of them, and that of the last transaction skipped."""
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
        pending: list[RowChange] = []
        last = skipped = None
        for _, data in rows:
            decoded = self.decoder.decode(bytes(data))
            if isinstance(decoded, Relation) and decoded.name == self.mapping.table:
                self.watch.observe(name for name, _ in decoded.columns)
            elif isinstance(decoded, RowMessage) and decoded.table == self.mapping.table:
                pending.append(self._change(decoded))
            elif isinstance(decoded, Commit):
                if after is not None and decoded.end_lsn <= after:
                    skipped = decoded.end_lsn
                else:
                    changes += pending
                    last = decoded.end_lsn
                pending = []
        return changes, last, skipped

    def _change(self, message: RowMessage) -> RowChange:
        row = message.row
        stamp = None if message.deleted else row.get(self.mapping.changed_at)
        stamp = stamp or self.decoder.commit_time or datetime.now(UTC)
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return translate(self.watch.effective, row, stamp, deleted=message.deleted)

    def acknowledge(self, lsn: str) -> None:
        """Let the slot forget what came before `lsn` (already applied); never moves it back."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "SELECT pg_replication_slot_advance(slot_name, "
                    "GREATEST(CAST(:l AS pg_lsn), confirmed_flush_lsn)) "
                    "FROM pg_replication_slots WHERE slot_name = :s"
                ),
                {"s": self.slot, "l": lsn},
            )
        self._log_snapshot()

    def _log_snapshot(self) -> None:
        """Have the server log a snapshot of running transactions (see SNAPSHOT_EVERY), so the
        slot's restart point follows it; without the right to, reads simply decode more."""
        now = time.monotonic()
        if not self.snapshots or now - self._snapshot_at < SNAPSHOT_EVERY:
            return
        self._snapshot_at = now
        try:
            with self.engine.begin() as conn:
                conn.execute(text("SELECT pg_log_standby_snapshot()"))
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) not in _CANNOT_SNAPSHOT:
                raise
            self.snapshots = False
            log.info(
                "slot %s: the server does not log snapshots for this capture (%s); each read "
                "decodes from the last one it logged itself",
                self.slot,
                type(exc.orig).__name__,
            )

    def drop(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(text("SELECT pg_drop_replication_slot(:s)"), {"s": self.slot})
            conn.execute(text(f'DROP PUBLICATION IF EXISTS "{self.publication}"'))
