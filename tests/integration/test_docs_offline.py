"""/docs, /redoc and GraphiQL load every script and style from the platform itself, so they work
on a network without internet access."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.config import Settings


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'docs.db'}", run_workers=False)
    return TestClient(create_app(settings))


@pytest.mark.parametrize("page", ["/docs", "/redoc", "/graphql"])
def test_documentation_pages_use_only_local_assets(client: TestClient, page: str) -> None:
    with client:
        response = client.get(page, headers={"Accept": "text/html"})
        assert response.status_code == 200, response.text
        html = response.text
        referenced = re.findall(r'(?:src|href)="([^"]+)"', html)
        referenced += re.findall(r"(?:src|href)='([^']+)'", html)
        assets = [url for url in referenced if not url.startswith(("data:", "#"))]
        assert assets, html[:500]
        for url in assets:
            assert url.startswith("/"), f"{page} loads {url} from elsewhere"
            answer = client.get(url)
            assert answer.status_code == 200, url
            assert answer.headers["content-type"].split(";")[0] in {
                "text/javascript",
                "text/css",
                "image/png",
            }, url
        assert "unpkg.com" not in html and "cdn.jsdelivr.net" not in html
        policy = response.headers["content-security-policy"]
        assert "https:" not in policy


def test_unknown_assets_are_not_found(client: TestClient) -> None:
    with client:
        for name in ("nope.js", "..%2Fconfig.py", "LICENSES.md"):
            answer = client.get(f"/docs-assets/{name}")
            assert answer.status_code == 404, name
            if "%2F" not in name:  # a slash is no asset name: no route matches at all
                assert "no documentation asset" in answer.json()["message"]


def test_the_home_page_links_the_board_booking_trips_console_and_docs(client: TestClient) -> None:
    with client:
        home = client.get("/").text
        for link in ("/fids/ZRH", "/book", "/trips", "/console", "/docs", "/redoc", "/graphql"):
            assert f'href="{link}"' in home, link
