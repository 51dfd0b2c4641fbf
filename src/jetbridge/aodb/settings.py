"""The `[capture]` section of the settings file: which AODB sources `jetbridge capture` runs.

```toml
[capture]
lease_seconds = 5.0            # a dead capturer's source is taken over after this long

[capture.sources.main]
kind = "logical"               # watermark | logical | binlog
url_env = "MAIN_AODB_URL"      # or url = "postgresql://reader@aodb.example/aodb"
mapping = "aodb-mapping.toml"  # relative to this file
slot = "jetbridge_main"        # logical: the replication slot (and publication <slot>_pub)
```

Without a settings file (or without the named source in it) the source `aodb` is read from
JETBRIDGE_AODB_URL, JETBRIDGE_AODB_CAPTURE and JETBRIDGE_AODB_MAPPING.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from jetbridge.aodb.cdc import DEFAULT_MAPPING

ENV_SOURCE = "aodb"


class InvalidCaptureSettings(ValueError):
    """The [capture] section is malformed or names a source that is not configured."""


class SourceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["watermark", "logical", "binlog"] = "watermark"
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    url_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    mapping: Path = DEFAULT_MAPPING
    slot: str = Field(default="jetbridge_cdc", pattern=r"^[a-z_][a-z0-9_]{0,50}$")
    server_id: int = Field(default=4242, ge=1, le=2**32 - 1)
    interval: float = Field(default=0.2, gt=0, le=60)

    @model_validator(mode="after")
    def _one_url(self) -> SourceSettings:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        return self

    def database_url(self) -> str:
        """The source's URL (read from the environment variable `url_env` names)."""
        if self.url is not None:
            return self.url
        assert self.url_env is not None
        value = os.environ.get(self.url_env)
        if not value:
            raise InvalidCaptureSettings(f"environment variable {self.url_env} is not set")
        return value


class CaptureSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lease_seconds: float = Field(default=5.0, ge=0.5, le=600)
    sources: dict[str, SourceSettings] = Field(default_factory=dict)

    def source(self, name: str) -> SourceSettings:
        try:
            return self.sources[name]
        except KeyError:
            known = ", ".join(sorted(self.sources)) or "none"
            raise InvalidCaptureSettings(
                f"capture source {name!r} is not configured (configured: {known})"
            ) from None


def load_capture_settings(
    path: Path | None,
    *,
    aodb_url: str | None = None,
    aodb_capture: str = "watermark",
    aodb_mapping: Path | None = None,
) -> CaptureSettings:
    """The [capture] section of `path` (if given) plus the source `aodb` from JETBRIDGE_AODB_*."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8")).get("capture", {})
        except OSError as exc:
            raise InvalidCaptureSettings(f"{path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidCaptureSettings(f"{path}: {exc}") from None
        if not isinstance(raw, dict):
            raise InvalidCaptureSettings(f"{path}: capture must be a table")
    try:
        settings = CaptureSettings.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidCaptureSettings(
            f"{path or 'settings'}: capture.{where}: {first['msg']}"
        ) from None
    base = path.parent if path is not None else Path.cwd()
    sources = {
        name: source.model_copy(update={"mapping": base / source.mapping})
        for name, source in settings.sources.items()
    }
    if ENV_SOURCE not in sources and aodb_url:
        sources[ENV_SOURCE] = SourceSettings(
            kind=aodb_capture,
            url=aodb_url,
            mapping=aodb_mapping or DEFAULT_MAPPING,
        )
    return settings.model_copy(update={"sources": sources})
