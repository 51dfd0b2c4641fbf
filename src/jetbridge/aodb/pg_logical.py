"""Low-latency change capture from PostgreSQL logical decoding (the built-in `pgoutput` plugin).

Changes are peeked from a replication slot over a normal SQL connection and the slot is advanced
only after the caller has applied them, so a crash in between replays them instead of losing them.
Needs `wal_level = logical` on the source server.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, Row, TextClause, text
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


class DecodeError(ValueError):
    """A pgoutput message could not be decoded (names the message kind and offset)."""


@dataclass
class Relation:
    schema: str
    name: str
    columns: list[tuple[str, int]]


def _timestamptz(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


# Text form to Python by type oid, for the types legacy tables use; any other stays text.
_CONVERTERS: dict[int, Callable[[str], Any]] = {
    **dict.fromkeys((20, 21, 23, 26), int),
    **dict.fromkeys((700, 701), float),
    1700: Decimal,
    16: "t".__eq__,
    1114: datetime.fromisoformat,
    1184: _timestamptz,
}


def convert(value: str | None, type_oid: int) -> Any:
    """Text form of a column value to Python, for the types legacy tables use."""
    if value is None:
        return None
    converter = _CONVERTERS.get(type_oid)
    return value if converter is None else converter(value)


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


# pgoutput's fixed-size parts, read in place (one message holds one change: no copies).
_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_BEGIN = struct.Struct("!qq")  # final LSN, commit time
_COMMIT = struct.Struct("!bqq")  # flags, commit LSN, end LSN
_COLUMN_TYPE = struct.Struct("!ii")  # type oid, type modifier
_TEXT, _NULL, _UNCHANGED = ord("t"), ord("n"), ord("u")
_KEY, _OLD, _NEW = ord("K"), ord("O"), ord("N")


def _string(data: bytes, offset: int) -> tuple[str, int]:
    end = data.index(b"\x00", offset)
    return data[offset:end].decode(), end + 1


@dataclass
class PgOutputDecoder:
    """Turns pgoutput messages into rows (with their relation) and commits."""

    relations: dict[int, Relation] = field(default_factory=dict)
    commit_time: datetime | None = None

    def decode(self, message: bytes) -> RowMessage | Commit | Relation | None:
        if not message:
            raise DecodeError("empty message")
        kind = chr(message[0])
        try:
            if kind == "B":
                self.commit_time = PG_EPOCH + timedelta(
                    microseconds=_BEGIN.unpack_from(message, 1)[1]
                )
                return None
            if kind == "C":
                return Commit(_COMMIT.unpack_from(message, 1)[2])
            if kind == "R":
                return self._relation(message)
            if kind in {"I", "U", "D"}:
                return self._row(message, kind)
        except (struct.error, IndexError):
            raise DecodeError(f"{kind} message truncated ({len(message)} bytes)") from None
        return None

    def _relation(self, data: bytes) -> Relation:
        (relid,) = _I32.unpack_from(data, 1)
        schema, offset = _string(data, 5)
        name, offset = _string(data, offset)
        (count,) = _I16.unpack_from(data, offset + 1)  # after the replica identity setting
        offset += 3
        columns = []
        for _ in range(count):
            column, offset = _string(data, offset + 1)  # after the column's flags
            type_oid, _ = _COLUMN_TYPE.unpack_from(data, offset)
            offset += _COLUMN_TYPE.size
            columns.append((column, type_oid))
        self.relations[relid] = Relation(schema, name, columns)
        return self.relations[relid]

    def _row(self, data: bytes, kind: str) -> RowMessage:
        (relid,) = _I32.unpack_from(data, 1)
        relation = self.relations.get(relid)
        if relation is None:
            raise DecodeError(f"{kind} message for unknown relation {relid}")
        marker, offset = data[5], 6
        if kind == "D":
            if marker not in {_KEY, _OLD}:
                raise DecodeError(f"D message: expected key or old tuple, got {chr(marker)!r}")
            return RowMessage(relation.name, _tuple(data, offset, relation)[0], deleted=True)
        if kind == "U" and marker in {_KEY, _OLD}:
            offset = _tuple(data, offset, relation)[1]
            marker, offset = data[offset], offset + 1
        if marker != _NEW:
            raise DecodeError(f"{kind} message: expected new tuple, got {chr(marker)!r}")
        return RowMessage(relation.name, _tuple(data, offset, relation)[0])


def _tuple(data: bytes, offset: int, relation: Relation) -> tuple[dict[str, Any], int]:
    """The columns of one tuple from `offset`, and the offset after it."""
    (count,) = _I16.unpack_from(data, offset)
    offset += 2
    row: dict[str, Any] = {}
    for name, type_oid in relation.columns[:count]:
        flag = data[offset]
        offset += 1
        if flag == _TEXT:
            (size,) = _I32.unpack_from(data, offset)
            start = offset + 4
            offset = start + size
            if offset > len(data):
                raise DecodeError(f"column {name}: value truncated at offset {start}")
            row[name] = convert(data[start:offset].decode(), type_oid)
        elif flag == _NULL:
            row[name] = None
        elif flag != _UNCHANGED:
            raise DecodeError(f"column {name}: unsupported tuple flag {chr(flag)!r}")
    return row, offset


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
        self._held: Connection | None = None

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection]:
        """The capture's own connection to the source, in autocommit, kept from one read to
        the next: a pool checkout with its ping, and a rollback, for each read and each
        acknowledgement were most of what a step waited for. A failed statement closes it; the
        next one opens another."""
        held = self._held
        if held is None or held.closed or held.invalidated:
            held = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._held = held
        try:
            yield held
        except BaseException:
            self.close()
            raise

    def _run(self, statement: TextClause, params: dict[str, Any]) -> list[Row[Any]]:
        """`statement`'s rows on the kept connection; one found dead since its last use (the
        server restarted, a firewall forgot it) is replaced once, as the pool's ping would."""
        reused = self._held is not None
        try:
            with self._connection() as conn:
                return list(conn.execute(statement, params).all())
        except DBAPIError as exc:
            if not (reused and exc.connection_invalidated):
                raise
        with self._connection() as conn:
            return list(conn.execute(statement, params).all())

    def close(self) -> None:
        """Give the kept connection back (a later read opens another)."""
        held, self._held = self._held, None
        if held is not None:
            with contextlib.suppress(Exception):
                held.close()

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
        rows = self._run(query, {"slot": self.slot, "limit": limit, "pub": self.publication})
        self.decoder = PgOutputDecoder()
        changes: list[RowChange] = []
        pending: list[RowChange] = []
        last = skipped = None
        for row in rows:
            decoded = self.decoder.decode(bytes(row.data))
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
        self._run(
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
            self._run(text("SELECT pg_log_standby_snapshot()"), {})
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
        self.close()
        with self.engine.begin() as conn:
            conn.execute(text("SELECT pg_drop_replication_slot(:s)"), {"s": self.slot})
            conn.execute(text(f'DROP PUBLICATION IF EXISTS "{self.publication}"'))
