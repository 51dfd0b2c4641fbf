"""Email over SMTP (plain or STARTTLS), sent from a worker thread."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlparse


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    sender: str = "jetbridge@localhost"

    @classmethod
    def parse(cls, url: str, *, sender: str = "jetbridge@localhost") -> SmtpSettings:
        """`smtp://[user:pass@]host[:port]` or `smtp+starttls://…`; port 25 by default."""
        parsed = urlparse(url)
        if parsed.scheme not in {"smtp", "smtp+starttls"} or not parsed.hostname:
            raise ValueError(f"SMTP URL {url!r}: expected smtp://host[:port]")
        return cls(
            host=parsed.hostname,
            port=parsed.port or 25,
            username=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            starttls=parsed.scheme == "smtp+starttls",
            sender=sender,
        )


def send_email(
    settings: SmtpSettings, *, to: str, subject: str, text: str, timeout: float = 15
) -> None:
    """Send one plain-text message; raises `smtplib.SMTPException` or `OSError` on failure."""
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(text)
    with smtplib.SMTP(settings.host, settings.port, timeout=timeout) as smtp:
        if settings.starttls:
            smtp.starttls()
        if settings.username:
            smtp.login(settings.username, settings.password or "")
        smtp.send_message(message)
