"""An outage is logged twice (when it begins, when it ends), whatever the number of attempts;
readiness of NATS names what is wrong."""

from __future__ import annotations

import logging
import sqlite3
import time

import pytest

from jetbridge.ops.health import nats_check
from jetbridge.storage.transient import Outage

log = logging.getLogger("tests.outage")


def test_a_run_of_transient_failures_is_two_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=log.name)
    outage = Outage("probe", log)
    locked = sqlite3.OperationalError("database is locked")
    assert [outage.failed(locked) for _ in range(5)] == [1, 2, 3, 4, 5]
    assert outage.ongoing
    outage.succeeded()
    outage.succeeded()  # nothing more to say
    assert not outage.ongoing
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0] == "probe: unavailable (database is locked); backing off until it answers"
    assert lines[1].startswith("probe: available again after ")
    assert lines[1].endswith(" s (5 failed attempts)")
    assert all(r.exc_info is None for r in caplog.records)


def test_an_error_that_will_not_pass_is_logged_with_its_traceback_each_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=log.name)
    outage = Outage("probe", log)
    for _ in range(3):
        outage.failed(ValueError("bad row"))
    assert [r.levelno for r in caplog.records] == [logging.ERROR] * 3
    assert all(r.exc_info is not None for r in caplog.records)


def test_an_error_the_caller_knows_to_be_passing_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=log.name)
    outage = Outage("NATS connection", log)
    for _ in range(4):
        outage.failed(ConnectionRefusedError(111, "Connection refused"), transient=True)
    assert len(caplog.records) == 1
    assert "[Errno 111] Connection refused" in caplog.records[0].getMessage()


@pytest.mark.parametrize(
    ("link", "waiting", "waited", "expected"),
    [
        (None, 0, None, None),
        (None, 3, 1.0, None),
        ("NATS is not connected (reconnecting)", 0, None, "NATS is not connected (reconnecting)"),
        (None, 11, 0.0, "11 events wait in the outbox for JetStream (more than 10)"),
        (None, 1, 120.0, "the oldest event waiting for JetStream was put 120 s ago"),
    ],
)
def test_nats_readiness_names_what_is_wrong(
    link: str | None, waiting: int, waited: float | None, expected: str | None
) -> None:
    def backlog() -> tuple[int, float | None]:
        return waiting, None if waited is None else time.time() - waited

    check = nats_check(lambda: link, backlog, most=10, oldest_seconds=60)
    answer = check()
    if expected is None:
        assert answer is None
    else:
        assert answer is not None and answer.startswith(expected), answer


def test_an_outage_that_changes_its_error_says_so(caplog: pytest.LogCaptureFixture) -> None:
    """The error that began an outage may not be what keeps it going (a timeout, then a
    refused stream): a new error gets a line, and so does a long outage now and then."""
    caplog.set_level(logging.DEBUG, logger=log.name)
    outage = Outage("relay", log, quiet_seconds=0.0)
    outage.failed(TimeoutError("nats: timeout"), transient=True)
    outage.failed(TimeoutError("nats: timeout"), transient=True)  # the same: nothing new
    outage.failed(RuntimeError("insufficient resources"), transient=True)
    outage.failed(RuntimeError("insufficient resources"), transient=True)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[1].startswith("relay: still unavailable after ")
    assert lines[1].endswith("(3 failed attempts): insufficient resources")

    caplog.clear()
    reminded = Outage("relay", log, remind_seconds=0.0)
    for _ in range(3):
        reminded.failed(TimeoutError("nats: timeout"), transient=True)
    assert [r.getMessage().split(" after ")[0] for r in caplog.records] == [
        "relay: unavailable (nats: timeout); backing off until it answers",
        "relay: still unavailable",
        "relay: still unavailable",
    ]

    caplog.clear()
    quiet = Outage("relay", log)  # changing errors within seconds: not a line each
    for number in range(5):
        quiet.failed(OSError(f"error {number}"), transient=True)
    assert len(caplog.records) == 1
