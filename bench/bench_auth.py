"""What checking the caller costs per request: the same read served to an anonymous caller (the
baseline), an API key, a jetbridge access token and a page session, over real HTTP to one
`uvicorn` server in its own process; and the cost of a password sign-in (Argon2id).

    python bench/bench_auth.py [--requests N]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from jetbridge.ops.identity.passwords import hash_password, verify_password

SERVER = """
import sys, uvicorn
from jetbridge.app import create_app
from jetbridge.config import Settings
app = create_app(Settings(database_url=sys.argv[1], run_workers=False,
                          rate_limit_public="off", rate_limit_login="off"))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed(client: httpx.Client, path: str, headers: dict[str, str], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.get(path, headers=headers)
        samples.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="jetbridge-bench-auth-"))
    url = f"sqlite:///{workdir / 'jetbridge.db'}"
    port = free_port()
    env = {**os.environ, "JETBRIDGE_DATA_DIR": str(workdir)}
    server = subprocess.Popen([sys.executable, "-c", SERVER, url, str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    client.get("/api/flights/schema")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            cli = [sys.executable, "-m", "jetbridge.cli"]
            subprocess.run([*cli, "tenants", "create", "--id", "LX", "--kind", "airline"],
                           env={**env, "JETBRIDGE_DATABASE_URL": url}, check=True,
                           capture_output=True)  # fmt: skip
            made = subprocess.run(
                [*cli, "api-keys", "create", "--name", "bench", "--roles", "operations",
                 "--tenant", "LX"], env={**env, "JETBRIDGE_DATABASE_URL": url}, check=True,
                capture_output=True, text=True)  # fmt: skip
            import json

            key = json.loads(made.stdout)["key"]
            client.post(
                "/api/auth/register", json={"username": "bench", "password": "bench password"}
            )
            token = client.post("/api/auth/token", data={"grant_type": "password",
                                "username": "bench", "password": "bench password"}).json()  # fmt: skip
            login = client.get("/login")
            client.post("/login", data={"username": "bench", "password": "bench password",
                                        "csrf_token": login.cookies["jb_login_csrf"]})  # fmt: skip
            session = {"Cookie": f"jb_session={client.cookies['jb_session']}"}
            client.cookies.clear()
            cases = [
                ("anonymous, public route (baseline)", "/api/flights/schema", {}),
                ("API key (hash lookup)", "/api/flights/schema", {"X-Api-Key": key}),
                ("access token (JWT, HS256)", "/api/flights/schema",
                 {"Authorization": f"Bearer {token['access_token']}"}),
                ("page session cookie", "/api/flights/schema", session),
            ]  # fmt: skip
            for _, path, headers in cases:  # warm up
                timed(client, path, headers, 50)
            rows = []
            for name, path, headers in cases:
                samples = sorted(timed(client, path, headers, args.requests))
                rows.append((name, statistics.median(samples), samples[int(len(samples) * 0.99)],
                             len(samples) / sum(samples)))  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    baseline = rows[0][1]
    print(
        f"| Caller ({args.requests} sequential GETs) | p50 ms | p99 ms | requests/s | p50 vs baseline |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, p50, p99, rate in rows:
        print(
            f"| {name} | {p50 * 1000:.2f} | {p99 * 1000:.2f} | {rate:.0f} | {p50 / baseline:.2f}x |"
        )
    stored = hash_password("a passphrase to check")
    start = time.perf_counter()
    for _ in range(20):
        verify_password(stored, "a passphrase to check")
    argon = (time.perf_counter() - start) / 20
    print()
    print("| Password check | ms each |")
    print("|---|---:|")
    print(f"| Argon2id verify (argon2-cffi defaults) | {argon * 1000:.1f} |")


if __name__ == "__main__":
    main()
