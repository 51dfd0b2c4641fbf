#!/usr/bin/env python3
"""Set-up entry point: `python3 dev.py up` runs the platform, `python3 dev.py test` runs every test.

Creates `.venv` with the project and its development dependencies on first use, so a fresh clone
needs nothing but Python 3.11+.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".jetbridge-installed"


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs on whatever python3 is installed
        sys.exit("jetbridge needs Python 3.11 or newer")
    if not (BIN / "python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    pyproject = ROOT / "pyproject.toml"
    if not STAMP.exists() or STAMP.stat().st_mtime < pyproject.stat().st_mtime:
        subprocess.run(
            [str(BIN / "python"), "-m", "pip", "install", "-q", "-e", f"{ROOT}[dev]"], check=True
        )
        STAMP.touch()


def ensure_browser() -> None:
    """Browser tests drive the system's Chromium; on Debian as root, install it if missing."""
    chromium = os.environ.get("JETBRIDGE_TEST_CHROMIUM", "/usr/bin/chromium")
    if Path(chromium).exists() or os.name == "nt" or not shutil.which("apt-get"):
        return
    if os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "chromium"]
        if subprocess.run(install, check=False, env=env).returncode != 0:
            # A fresh machine may have no package lists yet.
            subprocess.run(["apt-get", "update", "-q"], check=False, env=env)
            subprocess.run(install, check=False, env=env)
    else:
        print("browser tests need Chromium: sudo apt-get install chromium", file=sys.stderr)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"up", "test", "check"}:
        print(
            "usage: python3 dev.py up [jetbridge up options] | up --distributed [--port N] "
            "| test [pytest options] | check"
        )
        return 2
    ensure_environment()
    command, rest = argv[0], argv[1:]
    if command == "up" and "--distributed" in rest:
        rest = [arg for arg in rest if arg != "--distributed"]
        return subprocess.call([str(BIN / "python"), "-m", "jetbridge.devcluster", *rest])
    if command == "up":
        return subprocess.call([str(BIN / "jetbridge"), "up", "--demo", *rest])
    if command == "check":
        steps = [
            [str(BIN / "ruff"), "check", "."],
            [str(BIN / "ruff"), "format", "--check", "."],
            [str(BIN / "mypy")],
        ]
        return max(subprocess.call(step, cwd=ROOT) for step in steps)
    ensure_browser()
    return subprocess.call([str(BIN / "python"), "-m", "pytest", *rest], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
