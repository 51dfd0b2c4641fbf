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
