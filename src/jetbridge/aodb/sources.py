"""The three change sources behind one small interface: read changes after a stored position,
and acknowledge a position once its changes are applied."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import Engine

from jetbridge.aodb.cdc import Position, RowChange, SqlChangeCapture, TableMapping
from jetbridge.aodb.mysql_binlog import BinlogCapture, BinlogPosition
from jetbridge.aodb.pg_logical import PgLogicalCapture, lsn_text, parse_lsn

KINDS = ("watermark", "logical", "binlog")


class ChangeSource(Protocol):
    name: str

    def read(self, position: str | None) -> tuple[list[RowChange], str | None]: ...

    def acknowledge(self, position: str) -> None: ...

    def notices(self) -> list[str]:
        """What changed in the source's tables since the last call (for the ingest log)."""
        ...


class WatermarkSource:
    def __init__(self, capture: SqlChangeCapture) -> None:
        self.capture = capture
        self.name = f"watermark:{capture.mapping.name}"

    def read(self, position: str | None) -> tuple[list[RowChange], str | None]:
        changes, after = self.capture.poll(Position.from_json(position))
        return changes, after.to_json()

    def acknowledge(self, position: str) -> None:
        return None

    def notices(self) -> list[str]:
        return self.capture.watch.drain()


class LogicalSource:
    """PostgreSQL logical decoding; the slot itself is the durable position."""

    def __init__(self, capture: PgLogicalCapture) -> None:
        self.capture = capture
        self.name = f"logical:{capture.slot}"
        capture.ensure_slot()

    def read(self, position: str | None) -> tuple[list[RowChange], str | None]:
        """Transactions committed after `position` (an LSN); ones the slot still holds but
        that were applied before (their acknowledgement was lost) are skipped and let go."""
        after = parse_lsn(position) if position else None
        changes, last, skipped = self.capture.peek(after=after)
        if skipped is not None:
            self.capture.acknowledge(lsn_text(skipped))
        return changes, lsn_text(last) if last is not None else position

    def acknowledge(self, position: str) -> None:
        self.capture.acknowledge(position)

    def notices(self) -> list[str]:
        return self.capture.watch.drain()


class BinlogSource:
    def __init__(self, capture: BinlogCapture) -> None:
        self.capture = capture
        self.name = f"binlog:{capture.mapping.name}"
        self.opened_at = (
            capture.current_position()
        )  # where a source without a stored position starts

    def read(self, position: str | None) -> tuple[list[RowChange], str | None]:
        start = BinlogPosition.parse(position) if position else self.opened_at
        changes, after = self.capture.read(start)
        return changes, (after or start).to_json()

    def acknowledge(self, position: str) -> None:
        return None

    def notices(self) -> list[str]:
        return self.capture.watch.drain()


def open_source(
    kind: str, *, url: str, engine: Engine, mapping: TableMapping, slot: str = "jetbridge_cdc"
) -> ChangeSource:
    """`watermark` works on any SQL database; `logical` needs PostgreSQL; `binlog` MariaDB/MySQL."""
    if kind == "watermark":
        return WatermarkSource(SqlChangeCapture(engine, mapping))
    if kind == "logical":
        return LogicalSource(PgLogicalCapture(engine, mapping, slot=slot))
    if kind == "binlog":
        return BinlogSource(BinlogCapture(url, mapping))
    raise ValueError(f"AODB capture {kind!r}: use one of {', '.join(KINDS)}")
