"""JSON request bodies within bounds: every route's JSON body is checked for nesting depth,
number of values and unreadable text before any route sees it."""

from __future__ import annotations

import asyncio
from email.message import Message as MimeHeader

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jetbridge.api.errors import error_body
from jetbridge.jsonlimits import JsonLimitExceeded, JsonLimits, loads_within

_PARSE_IN_LOOP = 64 * 1024  # larger bodies are parsed in a thread, off the event loop
# Where the body parsed here is left for the route (jetbridge.api.puts): (the body, its value).
PARSED_BODY = "jetbridge.parsed_body"
_WITH_BODY = {"POST", "PUT", "PATCH", "DELETE"}
_STATUS = {
    "depth": (400, "JSONTooDeep"),
    "values": (413, "JSONTooLarge"),
    "text": (400, "InvalidJSON"),
}


def is_json(content_type: str | None) -> bool:
    """Whether the API reads this body as JSON: no content type, or application/json or +json."""
    if not content_type:
        return True
    header = MimeHeader()
    header["content-type"] = content_type
    subtype = header.get_content_subtype()
    return header.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class JsonBodyLimits:
    """Refuse a JSON body over `limits` with 400 or 413 naming the bound and where it was met.
    Bodies that are not JSON at all pass on, for the route to report as it does."""

    def __init__(self, app: ASGIApp, *, limits: JsonLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY or not self._json(scope):
            await self.app(scope, receive, send)
            return
        body, disconnected = await _read(receive)
        if disconnected is None and body:
            try:
                if len(body) > _PARSE_IN_LOOP:
                    value = await asyncio.to_thread(loads_within, body, self.limits, where="body")
                else:
                    value = loads_within(body, self.limits, where="body")
                scope[PARSED_BODY] = (body, value)
            except JsonLimitExceeded as exc:
                status, name = _STATUS[exc.problem]
                await error_body(status, name, str(exc))(scope, receive, send)
                return
            except ValueError:
                pass  # not JSON: the route's own parsing names what is wrong
        await self.app(scope, _replay(body, disconnected, receive), send)

    @staticmethod
    def _json(scope: Scope) -> bool:
        for name, value in scope.get("headers") or []:
            if name == b"content-type":
                # The usual value answered without parsing the header.
                return value == b"application/json" or is_json(value.decode("latin-1"))
        return True


async def _read(receive: Receive) -> tuple[bytes, Message | None]:
    """The whole body, or what came before the client went away (and that message)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _replay(body: bytes, disconnected: Message | None, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if disconnected is not None:
                return disconnected
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
