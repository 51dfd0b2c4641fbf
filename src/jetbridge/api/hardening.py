"""HTTP hardening: security headers on every response, CORS closed unless origins are listed,
rate limits, and client addresses taken from X-Forwarded-For only behind trusted proxies."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Awaitable, Iterable
from importlib import resources

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jetbridge.api.ratelimit import RateLimit, RateLimits, limit_storage
from jetbridge.config import Settings, setting_items
from jetbridge.web.docs import DOCS_PATHS

HSTS = "max-age=31536000"
NO_STORE_PREFIXES = ("/api/", "/graphql")
API_POLICY = "default-src 'none'; frame-ancestors 'none'"
# Swagger UI, ReDoc and GraphiQL are served by the platform (no CDN) but bootstrap with inline
# code that changes with the framework's versions; they get their own, looser policy, and only
# on their own paths.
DOCS_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.S)


def install_hardening(app: FastAPI, settings: Settings) -> None:
    """Wrap the application, outermost first: trusted proxies, security headers, CORS, rate
    limits. Call after every other middleware is added."""
    app.add_middleware(
        RateLimit, limits=RateLimits.from_settings(settings), storage=limit_storage(settings)
    )
    origins = setting_items(settings.cors_origins)
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
            expose_headers=["Retry-After", "Location"],
            max_age=600,
        )
    app.add_middleware(
        SecurityHeaders,
        page_policy=page_policy(),
        docs_paths=DOCS_PATHS,
        hsts=settings.hsts,
    )
    proxies = setting_items(settings.trusted_proxies)
    if proxies:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)


@functools.cache
def page_policy() -> str:
    """The Content-Security-Policy of the platform's pages: their inline scripts and styles are
    allowed by hash, nothing else inline, nothing from other origins."""
    pages = resources.files("jetbridge.web").joinpath("static")
    texts = [
        page.read_text(encoding="utf-8") for page in pages.iterdir() if page.name.endswith(".html")
    ]
    from jetbridge.web.account import STYLE  # the sign-in pages are rendered, not static

    texts.append(STYLE)
    scripts, styles = inline_hashes(texts)
    return "; ".join(
        [
            "default-src 'none'",
            " ".join(["script-src 'self'", *scripts]),
            " ".join(["style-src 'self'", *styles]),
            "img-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def inline_hashes(pages: Iterable[str]) -> tuple[list[str], list[str]]:
    """CSP sources ('sha256-...') of the inline <script> and <style> blocks of `pages`."""
    found: dict[str, set[str]] = {"script": set(), "style": set()}
    for text in pages:
        for tag, body in _INLINE.findall(text):
            digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
            found[tag].add(f"'sha256-{digest}'")
    return sorted(found["script"]), sorted(found["style"])


class SecurityHeaders:
    """Pure ASGI middleware adding security headers to each response's start; the body passes
    untouched, so streams stay streams."""

    def __init__(
        self, app: ASGIApp, *, page_policy: str, docs_paths: frozenset[str], hsts: str
    ) -> None:
        self.app = app
        self.page_policy = page_policy
        self.docs_paths = docs_paths
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        https = scope.get("scheme") == "https"

        def send_secured(message: Message) -> Awaitable[None]:
            # A plain function handing back the server's own awaitable: no coroutine per chunk.
            if message["type"] == "http.response.start":
                message = {**message, "headers": message.get("headers", [])}
                self._secure(MutableHeaders(scope=message), path, https)
            return send(message)

        await self.app(scope, receive, send_secured)

    def _secure(self, headers: MutableHeaders, path: str, https: bool) -> None:
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Content-Security-Policy", self._policy(headers, path))
        if self.hsts == "always" or (self.hsts == "auto" and https):
            headers.setdefault("Strict-Transport-Security", HSTS)
        if path.startswith(NO_STORE_PREFIXES):
            headers.setdefault("Cache-Control", "no-store")

    def _policy(self, headers: MutableHeaders, path: str) -> str:
        if not headers.get("content-type", "").startswith("text/html"):
            return API_POLICY
        if path in self.docs_paths:
            return DOCS_POLICY
        return self.page_policy
