"""Settings: the one typed configuration object, read from `JETBRIDGE_*` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jetbridge.flights.feeds.limits import FeedLimits
from jetbridge.jsonlimits import JsonLimits
from jetbridge.ops.crypto import InvalidKeyConfiguration, parse_keyring


class Settings(BaseSettings):
    """Everything the platform needs to start; validated once, passed to the composition root."""

    # Errors name the setting and what is wrong, never the value given: some values are secrets.
    model_config = SettingsConfigDict(
        env_prefix="JETBRIDGE_", extra="ignore", hide_input_in_errors=True
    )

    database_url: str = Field(
        default="sqlite:///var/jetbridge.db",
        description="SQLAlchemy URL: sqlite:///path (embedded default) or postgresql://...",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    region: str = "local-1"
    account: str = Field(default="000000000000", description="Default tenant / account id.")
    max_event_bytes: int = Field(default=256 * 1024, gt=0)
    max_request_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="largest request body the API reads (413)"
    )
    json_max_depth: int = Field(
        default=64, ge=2, le=512, description="deepest nesting of arrays and objects in JSON"
    )
    json_max_elements: int = Field(
        default=100_000,
        ge=10,
        description="most values (objects, arrays, strings, numbers, ...) in one JSON document",
    )
    max_workflow_input_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="largest workflow execution input or task output, as JSON",
    )
    feed_max_flights_per_message: int = Field(
        default=2000, ge=1, description="flight legs one AIDX, MVT or ASM push or file may change"
    )
    feed_max_period_days: int = Field(
        default=230, ge=1, le=3660, description="longest SSM/ASM period of operation, in days"
    )
    delivery_poll_seconds: float = Field(default=0.2, gt=0)
    delivery_batch: int = Field(default=64, gt=0)
    delivery_concurrency: int = Field(default=32, gt=0)
    delivery_lease_seconds: float = Field(default=30.0, gt=0)
    retry_base_seconds: float = Field(default=1.0, ge=0)
    retry_max_backoff_seconds: float = Field(default=300.0, ge=0)
    http_target_timeout_seconds: float = Field(default=10.0, gt=0)
    signing_secret: str = Field(
        default="change-me", description="Default HMAC secret for HTTP targets without their own."
    )
    mqtt_url: str | None = Field(
        default=None, description="mqtt://host:port: publish retained flight and screen topics"
    )
    mqtt_prefix: str = "jetbridge"
    smtp_url: str | None = Field(
        default=None, description="smtp://host:port for email notifications"
    )
    smtp_sender: str = "flight-status@jetbridge.local"
    payments_url: str | None = Field(
        default=None,
        description="PaymentIntents-style provider; unset uses the built-in test provider",
    )
    payments_api_key: str = "test"
    redis_url: str | None = Field(default=None, description="redis://host:6379/0 caches searches")
    workflow_workers: int = Field(default=4, ge=1, le=64)
    workflow_lease_seconds: float = Field(default=300.0, gt=0)
    aodb_url: str | None = Field(
        default=None, description="legacy AODB database; unset: var/aodb.db (SQLite) for the demo"
    )
    aodb_capture: str = Field(default="watermark", pattern="^(watermark|logical|binlog)$")
    aodb_mapping: Path | None = Field(default=None, description="TOML column mapping")
    data_dir: Path = Path("var")
    data_keys: SecretStr | None = Field(
        default=None,
        description="KEY_ID:BASE64_32_BYTES[,...]: keys sealing personal data, the first active; "
        "unset on SQLite: a key generated once into data_dir/data-keys",
    )
    run_workers: bool = True
    sse_heartbeat_seconds: float = Field(
        default=15.0, gt=0, description="an idle SSE stream gets a keep-alive comment this often"
    )
    sse_stall_seconds: float = Field(
        default=30.0,
        gt=0,
        description="an SSE client whose socket has taken nothing for this long is cut off; "
        "it reconnects and resumes from its Last-Event-ID",
    )

    @field_validator("data_keys")
    @classmethod
    def _valid_data_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                parse_keyring(value.get_secret_value())
            except InvalidKeyConfiguration as exc:
                raise ValueError(f"JETBRIDGE_DATA_KEYS: {exc}") from None
        return value

    def feed_limits(self) -> FeedLimits:
        return FeedLimits(
            max_flights=self.feed_max_flights_per_message,
            max_period_days=self.feed_max_period_days,
        )

    def json_limits(self) -> JsonLimits:
        return JsonLimits(max_depth=self.json_max_depth, max_elements=self.json_max_elements)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
