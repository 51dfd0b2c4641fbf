"""The API documentation pages (Swagger UI, ReDoc) and GraphiQL, with every script and style
served by the platform itself: they work on an airport network without internet access.

Swagger UI and ReDoc come from the `fastapi-offline` package; GraphiQL, React and their helpers
are vendored from their npm packages in `web/vendor` (licences beside them, LICENSES.md).
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response

from jetbridge.api.policy import Public
from jetbridge.errors import NotFound

ASSETS = "/docs-assets"
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/graphql"})
_MEDIA = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
_OFFLINE = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
_VENDORED = (
    "graphiql.min.js",
    "graphiql.min.css",
    "react.production.min.js",
    "react-dom.production.min.js",
    "js.cookie.min.js",
    "graphiql-plugin-explorer.umd.js",
    "graphiql-plugin-explorer.css",
)

router = APIRouter(include_in_schema=False)


def _asset(name: str) -> Traversable | None:
    if name in _OFFLINE:
        return resources.files("fastapi_offline").joinpath("static", name)
    if name in _VENDORED:
        return resources.files("jetbridge.web").joinpath("vendor", name)
    return None


@router.get(ASSETS + "/{name}")
def docs_asset(name: str, _: Public) -> Response:
    """One script, style sheet or icon of the documentation pages (a fixed list)."""
    found = _asset(name)
    if found is None:
        raise NotFound(f"no documentation asset named {name!r}")
    media = _MEDIA[name[name.rindex(".") :]]
    return Response(
        found.read_bytes(),
        media_type=media,
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/docs")
def swagger_ui(request: Request, _: Public) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} - API",
        oauth2_redirect_url="/docs/oauth2-redirect",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon.png",
    )


@router.get("/docs/oauth2-redirect")
def swagger_ui_redirect(_: Public) -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc(request: Request, _: Public) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} - API",
        redoc_js_url=f"{ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS}/favicon.png",
        with_google_fonts=False,
    )


_CDN_ASSET = re.compile(
    r'src="https://unpkg\.com/[^"]+/([^"/]+)"|href="https://unpkg\.com/[^"]+/([^"/]+)"'
)
_RENAMED = {
    "index.umd.js": "graphiql-plugin-explorer.umd.js",
    "style.css": "graphiql-plugin-explorer.css",
}


def graphiql_html(page: str) -> str:
    """Strawberry's GraphiQL page with its CDN scripts and styles served from here."""

    def local(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        name = _RENAMED.get(name, name)
        if name not in _VENDORED:
            raise ValueError(f"GraphiQL asks for {name!r}, which is not vendored")
        attribute = "src" if match.group(1) else "href"
        return f'{attribute}="{ASSETS}/{name}"'

    page = re.sub(r'\s+integrity="[^"]*"', "", page)
    page = re.sub(r"\s+crossorigin(=\"[^\"]*\")?", "", page)
    return _CDN_ASSET.sub(local, page)
