"""`jetbridge capture`: one configured AODB source fed into the hub, by whichever capturer
holds its lease.

Every capturer of a source runs the same loop: wait for the lease, open the source, then read,
apply and store the position in fenced transactions until stopped or fenced out. A capturer that
dies is taken over when its lease lapses; one stopped cleanly hands over at once.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from jetbridge.aodb.cdc import SchemaChanged, TableMapping
from jetbridge.aodb.lease import CaptureLease, LeaseLost, holder_name, take
from jetbridge.aodb.settings import CaptureSettings, SourceSettings
from jetbridge.aodb.sources import ChangeSource, open_source
from jetbridge.flights.cdc_runner import CdcRunner
from jetbridge.flights.hub import FlightHub, record_error
from jetbridge.loops import MAX_BACKOFF
from jetbridge.storage.db import create_database_engine
from jetbridge.storage.transient import Outage, backoff, is_transient

log = logging.getLogger(__name__)


class LeasedPositions:
    """The runner's position lives in the lease row, and every save checks the lease.

    A batch's save renews the lease, which nobody can take before it lapses: for half the
    lease after it, the position the runner committed is still the stored one (the next batch
    skips reading it back; its save still fences the batch)."""

    def __init__(self, lease: CaptureLease) -> None:
        self.lease = lease
        self.trusted_for: float | None = lease.lease_seconds / 2

    def load(self, conn: Connection) -> str | None:
        return self.lease.load(conn)

    def save(self, conn: Connection, position: str | None) -> None:
        self.lease.save(conn, position)


@dataclass
class Capturer:
    """Runs one source while it holds the source's lease; stands by while another does."""

    name: str
    source: SourceSettings
    hub: FlightHub
    lease_seconds: float = 5.0
    holder: str = field(default_factory=holder_name)
    lease: CaptureLease | None = None
    runner: CdcRunner | None = None
    legacy: Engine | None = None
    reported: str | None = None
    lost: CaptureLease | None = None
    taken_at: float | None = None
    outage: Outage = field(init=False)

    def __post_init__(self) -> None:
        self.outage = Outage(f"capture {self.name}", log)

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set: take the lease when free, capture while it is held."""
        waiting_logged = False
        try:
            while not stop.is_set():
                if self.lease is None and not self._take_or_back_off(stop):
                    if self.outage.ongoing:
                        continue
                    if not waiting_logged:
                        log.info("capture %s: another capturer holds the lease; waiting", self.name)
                        waiting_logged = True
                    stop.wait(min(self.lease_seconds / 5, 1.0))
                    continue
                waiting_logged = False
                if self.lost is not None and self.lost is self.lease:
                    log.warning("capture %s: lease lost to another capturer", self.name)
                    self.lease = None
                    continue
                moved = self._step(stop)
                if not moved:
                    stop.wait(self.source.interval)
        finally:
            self._release()

    def _take_or_back_off(self, stop: threading.Event) -> bool:
        """Take the lease if free; while the platform's database is away, wait longer each
        time (the capturer outlives the outage)."""
        try:
            taken = self._take()
        except Exception as exc:
            if not is_transient(exc):
                raise
            stop.wait(backoff(self.outage.failed(exc), ceiling=MAX_BACKOFF))
            return False
        self.outage.succeeded()
        return taken

    def _take(self) -> bool:
        with self.hub.backbone.transaction() as conn:
            self.lease = take(
                conn, source=self.name, holder=self.holder, lease_seconds=self.lease_seconds
            )
        if self.lease is None:
            return False
        threading.Thread(
            target=self._keep, args=(self.lease,), name=f"lease {self.name}", daemon=True
        ).start()
        self.taken_at = time.monotonic()
        log.info("capture %s: lease taken (generation %s)", self.name, self.lease.generation)
        print(f"capture {self.name}: active (generation {self.lease.generation})", flush=True)
        return True

    def _keep(self, lease: CaptureLease) -> None:
        """Renew the lease every third of its length while this process lives and holds it, so
        a batch slower than the lease (a loaded machine, a backlog) does not lose it; a process
        that dies stops renewing and is taken over."""
        renewal = Outage(f"capture {self.name}: renewing the lease", log)
        while self.lease is lease:
            time.sleep(self.lease_seconds / 3)
            if self.lease is not lease:
                return
            try:
                with self.hub.backbone.transaction() as conn:
                    lease.save(conn, None)
                renewal.succeeded()
            except LeaseLost:
                self.lost = lease  # the capture loop stands by before it reads again
                return
            except Exception as exc:  # tried again a third of the lease later; fenced anyway
                renewal.failed(exc)

    def _open(self, lease: CaptureLease) -> CdcRunner:
        if self.runner is None:
            url = self.source.database_url()
            self.legacy = create_database_engine(url)
            mapping = TableMapping.load(self.source.mapping)
            source: ChangeSource = open_source(
                self.source.kind,
                url=url,
                engine=self.legacy,
                mapping=mapping,
                slot=self.source.slot,
            )
            self.runner = CdcRunner(source, self.hub, name=self.name)
        held = self.runner.positions
        if not (isinstance(held, LeasedPositions) and held.lease is lease):
            self.runner.positions = LeasedPositions(lease)
        return self.runner

    def _step(self, stop: threading.Event) -> bool:
        """One batch under the lease; False when there was nothing to do (or it failed)."""
        assert self.lease is not None
        try:
            started = time.monotonic()
            runner = self._open(self.lease)
            applied = runner.step()
            if applied and self.taken_at is not None:
                log.info(
                    "capture %s: first batch under the lease, %d changes, applied %.2f s after "
                    "taking it (this batch %.2f s)", self.name, applied,
                    time.monotonic() - self.taken_at, time.monotonic() - started,
                )  # fmt: skip
                self.taken_at = None
            self.reported = None
            self.outage.succeeded()
            return applied > 0
        except LeaseLost:
            log.warning("capture %s: lease lost to another capturer; standing by", self.name)
            self.lease = None
        except SchemaChanged as exc:
            self._report(str(exc))
            stop.wait(min(self.lease_seconds / 3, 5.0))
        except (DBAPIError, OSError) as exc:
            # A source or platform database that is briefly unreachable or busy (a slot still
            # held by a capturer that was just fenced out): report, wait, read again.
            # Logged when it begins and when it ends, not at every attempt.
            stop.wait(backoff(self.outage.failed(exc, transient=True), ceiling=MAX_BACKOFF))
        return False

    def _report(self, message: str) -> None:
        """A source that cannot be read goes to the ingest log once, and capture keeps trying
        (renewing its lease) until someone fixes the table or the mapping."""
        if message != self.reported:
            log.error("capture %s: %s", self.name, message)
            with self.hub.backbone.transaction() as conn:
                record_error(conn, source=self.name[:64], location="schema", message=message)
            self.reported = message

    def _release(self) -> None:
        lease, self.lease = self.lease, None  # stops the renewal thread
        if lease is not None:
            try:
                with self.hub.backbone.transaction() as conn:
                    lease.release(conn)
            except Exception:  # a clean hand-over is a courtesy; the lease lapses anyway
                log.warning("capture %s: could not release the lease", self.name, exc_info=True)
        if self.legacy is not None:
            self.legacy.dispose()


def capturer(settings: CaptureSettings, name: str, hub: FlightHub) -> Capturer:
    """The capturer of the configured source `name`."""
    return Capturer(name, settings.source(name), hub, lease_seconds=settings.lease_seconds)
