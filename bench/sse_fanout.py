"""One update fanned out to thousands of SSE clients, each side in its own processes.

The server runs alone in its process; the clients are raw asyncio streams (a plain HTTP/1.1 GET,
no client library) spread over a few client processes. Each client reads its snapshot, then notes
on the system-wide monotonic clock when the frame carrying the marker arrives. The baseline is a
minimal asyncio server that writes one pre-built frame to every connection: the floor for one
Python process writing to that many sockets, read by the same client processes.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import resource
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

SNAPSHOT = b"event: snapshot"
CONNECTS_IN_FLIGHT = 100


def raise_fd_limit() -> int:
    """Lift this process's open-file limit to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def run_loop(main: Coroutine[Any, Any, Any]) -> Any:
    """Run on uvloop when it is installed (as the server does), else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Fanout:
    total: int
    connected: int
    delays: list[float]
    server_cpu: float

    def percentile(self, q: float) -> float:
        ordered = sorted(self.delays)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# Client side -----------------------------------------------------------------------------------


async def _watch(
    host: str,
    port: int,
    request: bytes,
    marker: bytes,
    ready: Callable[[], None],
    arrived: Callable[[float], None],
) -> None:
    """One SSE client: `ready()` after its snapshot, `arrived(t)` when the marker comes."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        seen = b""
        while (start := seen.find(SNAPSHOT)) < 0 or seen.find(b"\n\n", start) < 0:
            chunk = await reader.read(65536)
            if not chunk:
                return
            seen += chunk
        ready()
        tail = seen[seen.find(b"\n\n", seen.find(SNAPSHOT)) :]
        while marker not in tail:
            chunk = await reader.read(65536)
            if not chunk:
                return
            tail = tail[-len(marker) :] + chunk
        arrived(time.monotonic())
        await reader.read()  # stay connected until the bench ends, as a screen would
    finally:
        writer.close()


async def _clients(
    conn: Connection, host: str, port: int, path: str, count: int, marker: bytes
) -> list[float]:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    settled = 0
    opened = 0
    gate = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
    arrivals: list[float] = []
    all_settled = asyncio.Event()

    def settle() -> None:
        nonlocal settled
        settled += 1
        gate.release()
        if settled == count:
            all_settled.set()

    async def one() -> None:
        nonlocal opened
        is_open = False

        def ready() -> None:
            nonlocal is_open, opened
            is_open = True
            opened += 1
            settle()

        await gate.acquire()
        try:
            await _watch(host, port, request, marker, ready, arrivals.append)
        except OSError:
            pass
        finally:
            if not is_open:
                settle()

    tasks = [asyncio.create_task(one()) for _ in range(count)]
    await all_settled.wait()
    conn.send(("ready", opened))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_reader(conn.fileno(), stop.set)
    while len(arrivals) < opened and not stop.is_set():
        await asyncio.sleep(0.01)
    loop.remove_reader(conn.fileno())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return arrivals


def client_process(
    conn: Connection, host: str, port: int, path: str, count: int, marker: bytes
) -> None:
    """A client process holding `count` SSE connections; reports when ready, then arrivals."""
    raise_fd_limit()
    arrivals = run_loop(_clients(conn, host, port, path, count, marker))
    conn.send(("arrivals", arrivals))


def measure(
    *,
    host: str,
    port: int,
    path: str,
    clients: int,
    processes: int,
    marker: bytes,
    server_pid: int,
    fire: Callable[[], None],
    timeout: float = 60.0,
) -> Fanout:
    """Connect every client, then time from `fire()` (the commit) to each client's frame."""
    context = multiprocessing.get_context("spawn")
    links = []
    for index in range(processes):
        share = clients // processes + (1 if index < clients % processes else 0)
        parent, child = context.Pipe()
        proc = context.Process(
            target=client_process, args=(child, host, port, path, share, marker), daemon=True
        )
        proc.start()
        links.append((parent, proc))
    deadline = time.monotonic() + timeout * 3
    connected = 0
    for parent, _ in links:
        if not parent.poll(max(0.0, deadline - time.monotonic())):
            raise TimeoutError("the clients could not all connect and read their snapshot")
        connected += parent.recv()[1]
    time.sleep(1.0)  # let the connection storm settle before the timed update
    cpu_before = cpu_seconds(server_pid)
    start = time.monotonic()
    fire()
    arrivals: list[float] = []
    waiting = list(links)
    end = time.monotonic() + timeout
    while waiting and time.monotonic() < end:
        for link in list(waiting):
            if link[0].poll(0.01):
                arrivals += link[0].recv()[1]
                waiting.remove(link)
    cpu_after = cpu_seconds(server_pid)
    for parent, _ in waiting:
        parent.send("stop")
        arrivals += parent.recv()[1]
    for parent, proc in links:
        proc.join(timeout=10)
        parent.close()
    delays = sorted(t - start for t in arrivals)
    return Fanout(clients, connected, delays, cpu_after - cpu_before)


# Baseline server -------------------------------------------------------------------------------


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def _baseline(conn: Connection, port: int, snapshot: bytes, frame: bytes) -> None:
    writers: list[asyncio.StreamWriter] = []
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"transfer-encoding: chunked\r\n\r\n" + _chunk(snapshot)
    )
    update = _chunk(frame)

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(head)
        writers.append(writer)
        await reader.read()

    server = await asyncio.start_server(accept, "127.0.0.1", port, backlog=4096)
    conn.send("listening")
    loop = asyncio.get_running_loop()
    fired = asyncio.Event()
    loop.add_reader(conn.fileno(), fired.set)
    await fired.wait()
    conn.recv()
    for writer in writers:
        writer.write(update)
    fired.clear()
    await fired.wait()  # the bench says when to end
    server.close()


def baseline_process(conn: Connection, port: int, snapshot: bytes, frame: bytes) -> None:
    """Minimal asyncio server: a snapshot to each connection, then one frame to all at once."""
    raise_fd_limit()
    run_loop(_baseline(conn, port, snapshot, frame))
