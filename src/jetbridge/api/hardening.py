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
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jetbridge.api.ratelimit import RateLimit, RateLimits, limit_storage
from jetbridge.config import Settings, setting_items
from jetbridge.web.docs import DOCS_PATHS

HSTS = "max-age=31536000"
HSTS_HEADER = HSTS.encode("latin-1")
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
    untouched, so streams stay streams. A header the response sets itself is kept."""

    def __init__(
        self, app: ASGIApp, *, page_policy: str, docs_paths: frozenset[str], hsts: str
    ) -> None:
        self.app = app
        self.docs_paths = docs_paths
        self.hsts = hsts
        # Encoded once: every response gets them.
        self._fixed = tuple(
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in (
                ("x-content-type-options", "nosniff"),
                ("x-frame-options", "DENY"),
                ("referrer-policy", "no-referrer"),
                ("cross-origin-opener-policy", "same-origin"),
            )
        )
        self._api_policy = API_POLICY.encode("latin-1")
        self._docs_policy = DOCS_POLICY.encode("latin-1")
        self._page_policy = page_policy.encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        https = scope.get("scheme") == "https"

        def send_secured(message: Message) -> Awaitable[None]:
            # A plain function handing back the server's own awaitable: no coroutine per chunk.
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                self._secure(headers, path, https)
                message = {**message, "headers": headers}
            return send(message)

        await self.app(scope, receive, send_secured)

    def _secure(self, headers: list[tuple[bytes, bytes]], path: str, https: bool) -> None:
        present: set[bytes] = set()
        content_type = b""
        for name, value in headers:
            name = name.lower()
            if name == b"content-type" and name not in present:
                content_type = value
            present.add(name)
        missing = [(name, value) for name, value in self._fixed if name not in present]
        if b"content-security-policy" not in present:
            missing.append((b"content-security-policy", self._policy(content_type, path)))
        if b"strict-transport-security" not in present and (
            self.hsts == "always" or (self.hsts == "auto" and https)
        ):
            missing.append((b"strict-transport-security", HSTS_HEADER))
        if b"cache-control" not in present and path.startswith(NO_STORE_PREFIXES):
            missing.append((b"cache-control", b"no-store"))
        headers.extend(missing)

    def _policy(self, content_type: bytes, path: str) -> bytes:
        if not content_type.startswith(b"text/html"):
            return self._api_policy
        if path in self.docs_paths:
            return self._docs_policy
        return self._page_policy
