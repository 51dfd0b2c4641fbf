"""Structured logs: one JSON object per line with the trace and correlation ids of the work the
record is about, so a log line leads to its trace and to its request or event.

Messages are written as the code formats them; the code never formats personal data into a
message (names, cards, emails, addresses stay sealed in the database), and this formatter adds
only ids.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

from opentelemetry import trace

CORRELATION: ContextVar[str | None] = ContextVar("jetbridge_correlation", default=None)
CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def correlation_from(header: str | None) -> str | None:
    """A caller's X-Request-Id when it is a plain id; anything else is ignored."""
    return header if header is not None and CORRELATION_ID.fullmatch(header) else None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            body["trace_id"] = f"{context.trace_id:032x}"
            body["span_id"] = f"{context.span_id:016x}"
        correlation = CORRELATION.get()
        if correlation is not None:
            body["correlation_id"] = correlation
        if record.exc_info and record.exc_info[0] is not None:
            # The exception's type and where it was raised; its message may quote input.
            body["error"] = record.exc_info[0].__name__
            body["stack"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False)


def configure_logging(fmt: str, level: int = logging.INFO) -> None:
    """`json`: every record of the process as one JSON line on stderr; `text`: unchanged."""
    if fmt != "json":
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
