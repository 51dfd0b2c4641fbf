"""A keyring kept in a local file, for a single machine's embedded deployment.

Production sets its keys in the environment (or a secret store feeding it); this file only lets a
fresh clone start with encryption on, never with personal data in clear.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

from jetbridge.ops.crypto import DataKey, Keyring, parse_keyring

log = logging.getLogger(__name__)


def local_keyring(path: Path, *, key_id: str = "local") -> Keyring:
    """Read the keyring at `path`, creating it (mode 0600) with one new key the first time."""
    if not path.exists():
        _create(path, DataKey.generate(key_id))
    mode = stat.S_IMODE(path.stat().st_mode)
    if os.name == "posix" and mode & 0o077:
        log.warning("data key file %s is readable by others (mode %o); chmod 600 it", path, mode)
    try:
        return parse_keyring(path.read_text(encoding="utf-8").strip())
    except ValueError as exc:
        raise ValueError(f"data key file {path}: {exc}") from None


def _create(path: Path, key: DataKey) -> None:
    """Write the key to a private temporary file, then link it into place: two processes starting
    at once end up with the same key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(key.entry() + "\n")
        os.link(temporary, path)
    except FileExistsError:
        return
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    log.warning(
        "generated data encryption key %r in %s; production must set JETBRIDGE_DATA_KEYS",
        key.key_id,
        path,
    )
