"""Text messages: an adapter interface and a client for a simple HTTP SMS API.

The API is the common shape of SMS gateways: `POST {base}/messages` with a bearer key and a
JSON body `{"to": "+41...", "text": "..."}`, answering 2xx when accepted.
"""

from __future__ import annotations

import re
from typing import Protocol

import httpx

PHONE = re.compile(r"^\+[1-9]\d{6,14}$")


class SmsFailed(Exception):
    """The gateway refused or could not be reached; `retryable` says whether to try again."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class SmsSender(Protocol):
    async def send(self, *, to: str, text: str) -> None: ...


class HttpSms:
    """Sends through an HTTP SMS gateway with the platform's outbound client."""

    def __init__(self, client: httpx.AsyncClient, *, base_url: str, api_key: str) -> None:
        self.client = client
        self.url = base_url.rstrip("/") + "/messages"
        self.api_key = api_key

    async def send(self, *, to: str, text: str) -> None:
        if not PHONE.match(to):
            raise SmsFailed("sms: the number is not in E.164 form", retryable=False)
        try:
            response = await self.client.post(
                self.url,
                json={"to": to, "text": text[:1600]},
                headers={"Authorization": f"Bearer {self.api_key}"},
            )
        except httpx.HTTPError as exc:
            raise SmsFailed(f"sms: {type(exc).__name__}", retryable=True) from None
        if response.status_code >= 300:
            retryable = response.status_code in {408, 429} or response.status_code >= 500
            raise SmsFailed(f"sms: HTTP {response.status_code}", retryable=retryable)
