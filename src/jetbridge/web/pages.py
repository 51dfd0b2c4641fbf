"""Passenger pages: search and book, and my trips with live booking and flight status."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from jetbridge.api.policy import Public

router = APIRouter(include_in_schema=False)


def _page(name: str) -> str:
    return resources.files("jetbridge.web").joinpath(f"static/{name}").read_text()


@router.get("/book", response_class=HTMLResponse)
def book(_: Public) -> str:
    return _page("book.html")


@router.get("/trips", response_class=HTMLResponse)
def trips(_: Public) -> str:
    return _page("trips.html")
