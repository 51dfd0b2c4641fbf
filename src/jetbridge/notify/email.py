"""Email over SMTP (plain or STARTTLS), sent from worker threads over a few reused
connections: a connection costs a handshake (greeting, EHLO, STARTTLS, login) that a burst of
notices would otherwise pay once per message."""

from __future__ import annotations

import contextlib
import hashlib
import smtplib
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import unquote, urlparse

# An idle connection older than this is closed rather than reused: servers drop idle clients
# (RFC 5321 suggests a 5 minute timeout; many use less).
IDLE_SECONDS = 30.0


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


def message_id(key: str, sender: str) -> str:
    """A Message-ID that is the same each time the message with this `key` is sent: a message
    sent again after a crash (delivery is at least once) is recognisably the same message.
    The key is hashed, so nothing of it shows."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    domain = sender.rpartition("@")[2] or "jetbridge.local"
    return f"<{digest}@{domain}>"


def _message(
    settings: SmtpSettings, *, to: str, subject: str, text: str, key: str | None = None
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = subject
    if key is not None:
        message["Message-ID"] = message_id(key, settings.sender)
    message.set_content(text)
    return message


def _connect(settings: SmtpSettings, timeout: float) -> smtplib.SMTP:
    # The client names itself "localhost" in EHLO: looking up the machine's full name for each
    # connection (smtplib's default) can wait on DNS.
    smtp = smtplib.SMTP(settings.host, settings.port, timeout=timeout, local_hostname="localhost")
    try:
        if settings.starttls:
            smtp.starttls()
        if settings.username:
            smtp.login(settings.username, settings.password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def send_email(
    settings: SmtpSettings, *, to: str, subject: str, text: str, timeout: float = 15
) -> None:
    """Send one plain-text message on a connection of its own; raises `smtplib.SMTPException`
    or `OSError` on failure."""
    with _connect(settings, timeout) as smtp:
        smtp.send_message(_message(settings, to=to, subject=subject, text=text))


@dataclass
class Mailer:
    """Sends plain-text messages over at most `connections` SMTP connections at a time, kept
    open between messages. Callable from any number of threads: a caller beyond the limit waits
    for a connection. A connection that failed is closed, never reused; one the server closed
    while idle is replaced and the message sent on a new one."""

    settings: SmtpSettings
    connections: int = 4
    timeout: float = 15.0
    idle_seconds: float = IDLE_SECONDS
    _idle: list[tuple[smtplib.SMTP, float]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _slots: threading.BoundedSemaphore = field(init=False)

    def __post_init__(self) -> None:
        if self.connections < 1:
            raise ValueError("connections: expected at least 1")
        self._slots = threading.BoundedSemaphore(self.connections)

    def send(self, *, to: str, subject: str, text: str, key: str | None = None) -> None:
        """Send one message (with a Message-ID made from `key`, if given); raises
        `smtplib.SMTPException` or `OSError` on failure."""
        message = _message(self.settings, to=to, subject=subject, text=text, key=key)
        if not self._slots.acquire(timeout=self.timeout):
            raise TimeoutError("email: every SMTP connection stayed busy")
        try:
            smtp, reused = self._take()
            try:
                smtp.send_message(message)
            except (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException) as exc:
                _close(smtp)
                if not (reused and _closed_by_server(exc)):
                    raise
                # The server closed it while it lay idle: once more on a new connection.
                smtp = _connect(self.settings, self.timeout)
                try:
                    smtp.send_message(message)
                except BaseException:
                    _close(smtp)
                    raise
            except BaseException:
                _close(smtp)
                raise
            self._give_back(smtp)
        finally:
            self._slots.release()

    def close(self) -> None:
        """Close the idle connections (say QUIT); later sends open new ones."""
        with self._lock:
            idle, self._idle = self._idle, []
        for smtp, _ in idle:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
            _close(smtp)

    def _take(self) -> tuple[smtplib.SMTP, bool]:
        now = time.monotonic()
        stale = []
        found: smtplib.SMTP | None = None
        with self._lock:
            while self._idle:
                smtp, since = self._idle.pop()
                if now - since <= self.idle_seconds:
                    found = smtp
                    break
                stale.append(smtp)
        for smtp in stale:
            _close(smtp)
        if found is not None:
            return found, True
        return _connect(self.settings, self.timeout), False

    def _give_back(self, smtp: smtplib.SMTP) -> None:
        with self._lock:
            self._idle.append((smtp, time.monotonic()))


def _closed_by_server(exc: Exception) -> bool:
    """The connection was gone before the message was taken: the server hung up, or answered
    421 (closing the channel, RFC 5321 section 3.8) to the first command."""
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return True
    return isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code == 421


def _close(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        smtp.close()
