"""A Distributed Map reads its items from file:// URLs inside the directories the operator
allows and from http(s):// URLs through the outbound client; everything else is refused with
States.ItemReaderFailed naming why."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.ops.outbound import OutboundPolicy
from jetbridge.workflows import execute
from jetbridge.workflows.item_urls import parse_roots, url_reader

READ_URL = "arn:aws:states:::jetbridge:readUrl"


def machine(url: str, **config: Any) -> dict[str, Any]:
    state = {
        "Type": "Map",
        "ItemReader": {"Resource": READ_URL, "ReaderConfig": config, "Parameters": {"Url": url}},
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
            "StartAt": "P",
            "States": {"P": {"Type": "Pass", "End": True}},
        },
        "End": True,
    }
    return {"StartAt": "M", "States": {"M": state}}


def run(url: str, reader: Any, **config: Any) -> Any:
    return execute(machine(url, **config), {}, {}, name="urls-1", read_url=reader)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    allowed = tmp_path / "allowed"
    (allowed / "in").mkdir(parents=True)
    (allowed / "in" / "legs.jsonl").write_text('{"id": 1}\n{"id": 2}\n')
    (allowed / "in" / "legs.csv").write_text("id,gate\nLX1,A1\n")
    (allowed / "big.json").write_text(json.dumps(list(range(400))))
    (tmp_path / "secret.json").write_text('["secret"]')
    (allowed / "out.json").symlink_to(tmp_path / "secret.json")
    return allowed


@pytest.fixture
def server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            bodies = {
                "/legs.json": b'[{"id": "LX1"}, {"id": "LX2"}]',
                "/big": b"[" + b"1," * 999 + b"1]",
            }
            body = bodies.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_files_inside_an_allowed_root_are_read(root: Path) -> None:
    reader = url_reader([root], OutboundPolicy())
    lines = run((root / "in" / "legs.jsonl").as_uri(), reader, InputType="JSONL")
    assert (lines.status, lines.output) == ("SUCCEEDED", [{"id": 1}, {"id": 2}])
    rows = run((root / "in" / "legs.csv").as_uri(), reader, InputType="CSV")
    assert rows.output == [{"id": "LX1", "gate": "A1"}]


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("file://{root}/../secret.json", "outside the directories"),
        ("file://{root}/out.json", "outside the directories"),  # a link out of the root
        ("file://{root}/in", "not a regular file"),
        ("file://{root}/missing.json", "No such file"),
        ("file://elsewhere{root}/in/legs.csv", "names no host"),
        ("file://{root}/in/legs.csv?x=1", "no query"),
        ("file://{root}/big.json", "over 100 bytes"),
        ("ftp://example.com/legs.json", "only file://, https:// and http://"),
        ("file://{root}/%00.json", "not an absolute file path"),
    ],
)
def test_what_leaves_the_rules_is_refused_by_name(root: Path, url: str, named: str) -> None:
    reader = url_reader([root], OutboundPolicy(), max_bytes=100)
    result = run(url.format(root=root), reader)
    assert (result.status, result.error) == ("FAILED", "States.ItemReaderFailed")
    assert named in (result.cause or ""), result.cause
    assert "the ItemReader could not read" in (result.cause or "")


def test_without_allowed_roots_file_urls_are_refused_naming_the_setting(root: Path) -> None:
    refused = run((root / "in" / "legs.csv").as_uri(), url_reader([], OutboundPolicy()))
    assert refused.error == "States.ItemReaderFailed"
    assert "JETBRIDGE_ITEM_READER_FILE_ROOTS allows no directory" in (refused.cause or "")
    unconfigured = run((root / "in" / "legs.csv").as_uri(), None)
    assert "JETBRIDGE_ITEM_READER_FILE_ROOTS" in (unconfigured.cause or "")


def test_http_urls_go_through_the_outbound_policy(server: str, root: Path) -> None:
    refused = run(f"{server}/legs.json", url_reader([root], OutboundPolicy()))
    assert refused.error == "States.ItemReaderFailed"
    assert "JETBRIDGE_OUTBOUND_ALLOW" in (refused.cause or "")  # loopback is internal
    allowed = url_reader([], OutboundPolicy.from_setting(server.removeprefix("http://")))
    read = run(f"{server}/legs.json", allowed)
    assert (read.status, read.output) == ("SUCCEEDED", [{"id": "LX1"}, {"id": "LX2"}])
    missing = run(f"{server}/none", allowed)
    assert "HTTP status 404" in (missing.cause or "")
    small = url_reader(
        [], OutboundPolicy.from_setting(server.removeprefix("http://")), max_bytes=50
    )
    assert "over 50 bytes" in (run(f"{server}/big", small).cause or "")


def test_the_platform_takes_its_roots_from_the_settings(
    sqlite_url: str, root: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="not an absolute directory path"):
        Settings(database_url=sqlite_url, item_reader_file_roots="relative/dir")
    assert parse_roots(f"{root}:{tmp_path}") == [root, tmp_path]
    app = create_app(Settings(database_url=sqlite_url, item_reader_file_roots=str(root)))
    workflows = app.state.platform.workflows
    ended = workflows.run_express(
        name="urls-2",
        definition=machine((root / "in" / "legs.jsonl").as_uri(), InputType="JSONL"),
        input={},
    )
    assert (ended["status"], ended["output"]) == ("SUCCEEDED", [{"id": 1}, {"id": 2}])
    outside = workflows.run_express(
        name="urls-3", definition=machine((tmp_path / "secret.json").as_uri()), input={}
    )
    assert outside["error"] == "States.ItemReaderFailed"
