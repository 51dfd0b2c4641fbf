"""Low-latency change capture from the MariaDB/MySQL binary log (row-based replication).

The source server needs `log_bin` on, `binlog_format=ROW` and `binlog_row_image=FULL`. The
position (binlog file and offset) is returned with each batch; the caller stores it once the
batch is applied, so a restart resumes there and replays at worst what was not yet stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlparse

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from jetbridge.aodb.cdc import ColumnWatch, RowChange, TableMapping, translate


@dataclass(frozen=True, slots=True)
class BinlogPosition:
    log_file: str
    log_pos: int

    def to_json(self) -> str:
        return f"{self.log_file}:{self.log_pos}"

    @classmethod
    def parse(cls, text: str) -> BinlogPosition:
        name, _, offset = text.rpartition(":")
        if not name or not offset.isdigit():
            raise ValueError(f"binlog position {text!r}: expected FILE:OFFSET")
        return cls(name, int(offset))


def connection_settings(url: str) -> dict[str, Any]:
    """`mysql://user[:password]@host[:port]/database` to pymysql keyword arguments."""
    parsed = urlparse(url)
    if parsed.scheme not in {"mysql", "mariadb", "mysql+pymysql"} or not parsed.hostname:
        raise ValueError(f"MariaDB URL {url!r}: expected mysql://user@host[:port]/database")
    return {
        "host": parsed.hostname,
        "port": parsed.port or 3306,
        "user": unquote(parsed.username or "root"),
        "passwd": unquote(parsed.password or ""),
    }


class BinlogCapture:
    """Reads row events of one mapped table from the binlog, from a stored position."""

    def __init__(self, url: str, mapping: TableMapping, *, server_id: int = 4242) -> None:
        self.settings = connection_settings(url)
        self.schema = urlparse(url).path.lstrip("/") or None
        self.mapping = mapping
        self.server_id = server_id
        self.watch = ColumnWatch(mapping)

    def current_position(self) -> BinlogPosition:
        """Where the binlog ends now: start here to capture only future changes."""
        import pymysql

        with pymysql.connect(**self.settings) as conn, conn.cursor() as cursor:
            cursor.execute("SHOW MASTER STATUS")
            row = cursor.fetchone()
        if row is None:
            raise RuntimeError("binary logging is off on the source server (log_bin)")
        return BinlogPosition(str(row[0]), int(row[1]))

    def read(
        self, position: BinlogPosition | None, *, limit: int = 2000
    ) -> tuple[list[RowChange], BinlogPosition | None]:
        """Row changes after `position` (from the current end if None), without blocking."""
        stream = BinLogStreamReader(
            connection_settings=self.settings,
            server_id=self.server_id,
            only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, XidEvent],
            only_tables=[self.mapping.table],
            only_schemas=[self.schema] if self.schema else None,
            resume_stream=position is not None,
            log_file=position.log_file if position else None,
            log_pos=position.log_pos if position else None,
            blocking=False,
            is_mariadb=True,
        )
        changes: list[RowChange] = []
        pending: list[RowChange] = []
        latest = position
        try:
            for event in stream:
                if position and _not_after(stream.log_file, stream.log_pos, position):
                    # The server may restart the dump at the file's start; skip what was read.
                    continue
                if isinstance(event, XidEvent):
                    # Positions are only stored at transaction boundaries, where resuming is safe.
                    changes += pending
                    pending = []
                    latest = BinlogPosition(stream.log_file, stream.log_pos)
                    if len(changes) >= limit:
                        break
                    continue
                pending += [self._change(event, row) for row in event.rows]
        finally:
            stream.close()
        return changes, latest

    def _change(self, event: Any, row: dict[str, Any]) -> RowChange:
        values = row.get("after_values", row.get("values", {}))
        self.watch.observe(values)
        deleted = isinstance(event, DeleteRowsEvent)
        stamp = values.get(self.mapping.changed_at)
        if deleted or not isinstance(stamp, datetime):
            stamp = datetime.fromtimestamp(event.timestamp, UTC)
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return translate(self.watch.effective, values, stamp, deleted=deleted)


def _not_after(log_file: str, log_pos: int, position: BinlogPosition) -> bool:
    return log_file == position.log_file and log_pos <= position.log_pos
