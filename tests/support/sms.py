"""A local SMS gateway speaking the simple HTTP SMS API jetbridge's adapter uses:
`POST /messages` with `Authorization: Bearer <key>` and `{"to": "+41...", "text": "..."}`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from support.servers import serve_app


@dataclass
class SmsGateway:
    url: str = ""
    key: str = "sms-test-key"
    messages: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def sms_gateway() -> Iterator[SmsGateway]:
    gateway = SmsGateway()

    async def send(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {gateway.key}":
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        body = await request.json()
        if not isinstance(body, dict) or not {"to", "text"} <= set(body):
            return JSONResponse({"error": "expected to and text"}, status_code=400)
        with gateway.lock:
            gateway.messages.append({"to": body["to"], "text": body["text"]})
            number = len(gateway.messages)
        return JSONResponse({"id": f"msg-{number}", "status": "queued"}, status_code=202)

    app = Starlette(routes=[Route("/messages", send, methods=["POST"])])
    with serve_app(app) as url:
        gateway.url = url
        yield gateway
