"""Shared fixtures: databases (SQLite and a real PostgreSQL) and a running platform."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))

from jetbridge.storage.db import create_database_engine, normalise_url
from jetbridge.storage.migrate import upgrade
from support.postgres import PrivatePostgres, private_postgres


@pytest.fixture(scope="session", autouse=True)
def data_keys() -> Iterator[str]:
    """Every platform in the tests (and its subprocesses) seals personal data with one test key,
    as production does with JETBRIDGE_DATA_KEYS; nothing is written to the working tree."""
    from jetbridge.ops.crypto import DataKey

    keys = DataKey.generate("test").entry()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JETBRIDGE_DATA_KEYS", keys)
        yield keys


LOOPBACK_ALLOW = "127.0.0.0/8,::1/128"


@pytest.fixture(scope="session", autouse=True)
def outbound_allow() -> Iterator[str]:
    """The tests' receivers listen on loopback, an internal address outbound HTTP refuses
    unless allow-listed: every platform in the tests (and its subprocesses) allows loopback.
    Tests of the refusals build their Settings with `outbound_allow=""`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JETBRIDGE_OUTBOUND_ALLOW", LOOPBACK_ALLOW)
        yield LOOPBACK_ALLOW


@pytest.fixture(scope="session", autouse=True)
def generous_rate_limits() -> Iterator[None]:
    """Tests make many requests from 127.0.0.1 (polling loops among them): the platforms they
    start (and their subprocesses) get rate limits no test reaches by accident. The tests of the
    limits themselves pass their own in Settings."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JETBRIDGE_RATE_LIMIT_PUBLIC", "1000000/minute")
        patch.setenv("JETBRIDGE_RATE_LIMIT_LOGIN", "1000000/minute")
        patch.setenv("JETBRIDGE_TENANT_WRITE_QUOTA", "1000000/minute")
        yield


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A PostgreSQL server: JETBRIDGE_TEST_POSTGRES_URL if set, else one started from pip."""
    configured = os.environ.get("JETBRIDGE_TEST_POSTGRES_URL")
    if configured:
        yield normalise_url(configured)
        return
    with private_postgres() as server:
        enable_logical_decoding(server)
        yield server.server_url


def enable_logical_decoding(server: PrivatePostgres) -> None:
    """The PostgreSQL CDC source needs wal_level=logical, which takes a restart."""
    admin = create_engine(server.server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("ALTER SYSTEM SET wal_level = logical"))
    admin.dispose()
    server.stop()
    server.start()


def fresh_postgres_database(server_url: str) -> str:
    """Create an empty database on the server and return its URL."""
    name = f"jb_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'jetbridge.db'}"


@pytest.fixture
def postgres_url(postgres_server_url: str) -> str:
    return fresh_postgres_database(postgres_server_url)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each storage test runs on both backends."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated database on each backend, disposed of after the test."""
    engine = create_database_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def mqtt_url() -> Iterator[str]:
    """An MQTT broker: JETBRIDGE_TEST_MQTT_URL (e.g. Mosquitto) if set, else amqtt from pip."""
    configured = os.environ.get("JETBRIDGE_TEST_MQTT_URL")
    if configured:
        yield configured
        return
    from support.servers import mqtt_broker

    with mqtt_broker() as url:
        yield url


NATS_LOGS: list[Path] = []  # the session's nats-server log, once it has started


@pytest.fixture(scope="session")
def nats_server_url() -> Iterator[str]:
    """NATS with JetStream: JETBRIDGE_TEST_NATS_URL if set, else nats-server from pip (its log
    is added to the report of a failed test that used it)."""
    configured = os.environ.get("JETBRIDGE_TEST_NATS_URL")
    if configured:
        yield configured
        return
    from support.nats import nats_server

    with tempfile.TemporaryDirectory() as store:
        log = Path(store) / "nats-server.log"
        with nats_server(Path(store) / "jetstream", log) as server:
            NATS_LOGS.append(log)
            try:
                yield server.url
            finally:
                NATS_LOGS.remove(log)


@pytest.fixture
def nats_url(nats_server_url: str, nats_prefix: str) -> Iterator[str]:
    """The NATS server, for one test; it keeps its own streams apart by a prefix of its own
    (see `nats_prefix`), and they are deleted after it."""
    from support.nats import delete_streams

    yield nats_server_url
    with contextlib.suppress(Exception):  # what is left costs the shared server memory only
        delete_streams(nats_server_url, nats_prefix)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and NATS_LOGS and "nats_url" in getattr(item, "fixturenames", ()):
        from support.nats import log_tail

        report.sections.append(("nats-server log (session server)", log_tail(NATS_LOGS[-1])))
    return report


@pytest.fixture
def nats_prefix() -> str:
    """A subject and stream prefix of this test's own, so tests sharing a server never meet."""
    return f"jbt{uuid.uuid4().hex[:10]}"


@pytest.fixture
def mariadb_url() -> str:
    """A MariaDB with row-based binlog: JETBRIDGE_TEST_MARIADB_URL (set by .ci/run)."""
    configured = os.environ.get("JETBRIDGE_TEST_MARIADB_URL")
    if not configured:
        pytest.skip("JETBRIDGE_TEST_MARIADB_URL is not set (no pip package provides MariaDB)")
    return configured


CHROMIUM = os.environ.get("JETBRIDGE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import expect, sync_playwright

    # Assertions wait on what the page shows; on a loaded machine that can take a while.
    expect.set_options(timeout=30_000)
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield instance
        instance.close()


@pytest.fixture
def redis_url() -> str:
    """A Redis server: JETBRIDGE_TEST_REDIS_URL (set by .ci/run when the machine has one)."""
    configured = os.environ.get("JETBRIDGE_TEST_REDIS_URL")
    if not configured:
        pytest.skip("JETBRIDGE_TEST_REDIS_URL is not set (no pip package provides a Redis server)")
    return configured
