"""An ItemReader's URLs (`arn:aws:states:::jetbridge:readUrl`): `file://` inside the
directories the operator allows (JETBRIDGE_ITEM_READER_FILE_ROOTS), `https://` (and `http://`)
through the outbound HTTP client, which refuses internal addresses unless allowed.

A file is read only when its real path, links resolved, lies inside an allowed root; a
response or file over the size limit is refused. Every refusal is a ValueError naming why,
which the reader turns into States.ItemReaderFailed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from jetbridge.ops.outbound import OutboundPolicy, OutboundRefused, sync_client

SETTING = "JETBRIDGE_ITEM_READER_FILE_ROOTS"
MAX_BYTES = 64 * 1024 * 1024
TIMEOUT_SECONDS = 60.0


def parse_roots(setting: str) -> list[Path]:
    """The allowed directories: absolute paths separated by the path separator (`:`)."""
    roots = []
    for part in setting.split(os.pathsep):
        if not part.strip():
            continue
        root = Path(part.strip())
        if not root.is_absolute():
            raise ValueError(f"{SETTING}: {part!r} is not an absolute directory path")
        roots.append(root)
    return roots


def url_reader(
    roots: Sequence[Path],
    policy: OutboundPolicy,
    *,
    max_bytes: int = MAX_BYTES,
    timeout: float = TIMEOUT_SECONDS,
) -> Callable[[str], bytes]:
    """Reads an ItemReader's URL within these rules (ValueError or OSError saying why not)."""
    resolved = [root.resolve() for root in roots]

    def read(url: str) -> bytes:
        scheme = urlsplit(url).scheme.lower()
        if scheme == "file":
            return read_file(url, resolved, max_bytes)
        if scheme in {"https", "http"}:
            return _fetch(url, policy, max_bytes, timeout)
        raise ValueError(f"Url {url[:200]!r}: only file://, https:// and http:// URLs are read")

    return read


def read_file(url: str, roots: Sequence[Path], max_bytes: int) -> bytes:
    """The file a `file://` URL names, if it lies (links resolved) inside one of `roots`."""
    if not roots:
        raise ValueError(f"no file:// URL may be read: {SETTING} allows no directory")
    parts = urlsplit(url)
    if parts.netloc not in {"", "localhost"}:
        raise ValueError(f"Url {url[:200]!r}: a file:// URL names no host")
    if parts.query or parts.fragment:
        raise ValueError(f"Url {url[:200]!r}: a file:// URL has no query or fragment")
    text = unquote(parts.path)
    if "\x00" in text or not text.startswith("/"):
        raise ValueError(f"Url {url[:200]!r}: not an absolute file path")
    path = Path(text).resolve()
    if not any(path == root or path.is_relative_to(root) for root in roots):
        raise ValueError(f"Url {url[:200]!r}: the file is outside the directories {SETTING} allows")
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise ValueError(f"Url {url[:200]!r}: not a regular file")
    # No link is followed at the last step, and the file opened is the one checked above.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    with os.fdopen(os.open(path, flags), "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"Url {url[:200]!r}: not a regular file")
        if info.st_size > max_bytes:
            raise ValueError(f"Url {url[:200]!r}: the file is over {max_bytes} bytes")
        body = handle.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise ValueError(f"Url {url[:200]!r}: the file is over {max_bytes} bytes")
    return body


def _fetch(url: str, policy: OutboundPolicy, max_bytes: int, timeout: float) -> bytes:
    try:
        with (
            sync_client(policy, timeout=timeout) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise ValueError(f"Url {url[:200]!r}: HTTP status {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise ValueError(f"Url {url[:200]!r}: the response is over {max_bytes} bytes")
            body = bytearray()
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if len(body) > max_bytes:
                    raise ValueError(f"Url {url[:200]!r}: the response is over {max_bytes} bytes")
            return bytes(body)
    except OutboundRefused as exc:
        raise ValueError(f"Url {url[:200]!r}: refused: {exc}") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ValueError(f"Url {url[:200]!r}: {exc}") from None
