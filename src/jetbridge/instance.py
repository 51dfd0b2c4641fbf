"""One jetbridge per data directory and port: checked before anything is written.

`jetbridge up --demo` writes its simulated AODB and platform data under the data directory; a
second one started beside a running one must not touch them. The lock is an advisory `flock` on
`<data_dir>/jetbridge.lock`, held for the life of the process (the kernel drops it when the
process dies, however it dies), so a stale file never blocks a new start.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = "jetbridge.lock"


class AlreadyRunning(ValueError):
    """Another jetbridge serves this data directory or this port."""


@dataclass
class InstanceLock:
    path: Path
    fd: int

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now (0 asks for any port: always free)."""
    if port == 0:
        return True
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def claim(data_dir: Path, *, host: str, port: int) -> InstanceLock:
    """Hold `data_dir` for this process, or AlreadyRunning naming who holds it or the port."""
    import fcntl

    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _describe(fd)
        os.close(fd)
        raise AlreadyRunning(
            f"another jetbridge{holder} already serves the data directory {data_dir}; "
            "stop it first or use another JETBRIDGE_DATA_DIR"
        ) from None
    if not port_free(host, port):
        os.close(fd)
        raise AlreadyRunning(
            f"port {port} on {host} is already in use (another jetbridge?); "
            "stop it first or choose another --port"
        )
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": host, "port": port}).encode())
    return InstanceLock(path, fd)


def _describe(fd: int) -> str:
    try:
        body = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f" (process {int(body['pid'])}, port {int(body['port'])})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""
