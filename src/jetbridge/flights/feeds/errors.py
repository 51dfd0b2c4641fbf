"""The parsers' public error: names the file, the line or element, and the offending token."""

from __future__ import annotations


class ParseError(ValueError):
    def __init__(
        self, message: str, *, file: str | None = None, location: str = "", token: str | None = None
    ) -> None:
        self.file = file
        self.location = location
        self.token = token
        self.reason = message
        where = ":".join(part for part in (file or "", location) if part)
        shown = f" at {token!r}" if token is not None else ""
        super().__init__(f"{where + ': ' if where else ''}{message}{shown}")
