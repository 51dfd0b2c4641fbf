"""The operations console: one page over the bus, rule, dead-letter, replay, workflow and
ingestion APIs. The page holds no data; everything it shows needs the operations role."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from jetbridge.api.policy import Public

router = APIRouter(include_in_schema=False)


@router.get("/console", response_class=HTMLResponse)
def console_page(_: Public) -> str:
    return resources.files("jetbridge.web").joinpath("static/console.html").read_text()
