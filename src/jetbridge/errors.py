"""Public error types shared by services and entry points (mapped to HTTP status codes)."""

from __future__ import annotations


class JetbridgeError(Exception):
    """Base of every error the platform reports to a caller."""


class NotFound(JetbridgeError, LookupError):
    """The named resource does not exist (HTTP 404)."""


class Conflict(JetbridgeError):
    """The resource exists already or is in a state that forbids the request (HTTP 409)."""


class InvalidRequest(JetbridgeError, ValueError):
    """The request is well-formed JSON but its content is wrong (HTTP 400)."""


class ConfigurationError(JetbridgeError, ValueError):
    """The settings cannot run the platform; the message names the setting and the remedy."""


class Unauthenticated(JetbridgeError):
    """No valid credentials were presented (HTTP 401)."""


class Forbidden(JetbridgeError):
    """The caller is known but may not do this (HTTP 403)."""


class Unprocessable(JetbridgeError, ValueError):
    """The request contradicts an earlier one it claims to repeat (HTTP 422)."""


class TooManyRequests(JetbridgeError):
    """The caller exceeded a rate limit or quota (HTTP 429)."""

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after
