"""Settings: the one typed configuration object, read from `JETBRIDGE_*` environment variables."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from jetbridge.events.handlers import MODULE_NAME
from jetbridge.flights.feeds.limits import FeedLimits
from jetbridge.jsonlimits import JsonLimits
from jetbridge.ops.crypto import InvalidKeyConfiguration, parse_keyring
from jetbridge.ops.outbound import InvalidAllowList, OutboundPolicy, parse_allow_list


class Settings(BaseSettings):
    """Everything the platform needs to start; validated once, passed to the composition root."""

    # Errors name the setting and what is wrong, never the value given: some values are secrets.
    model_config = SettingsConfigDict(
        env_prefix="JETBRIDGE_", extra="ignore", hide_input_in_errors=True
    )

    database_url: str = Field(
        default="sqlite:///var/jetbridge.db",
        description="SQLAlchemy URL: sqlite:///path or postgresql://...; unset: "
        "data_dir/jetbridge.db (SQLite, the embedded default)",
    )
    sqlite_busy_timeout: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="seconds a SQLite statement waits for another writer before it fails",
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
    feed_open_period_days: int = Field(
        default=90,
        ge=1,
        le=3660,
        description="days an open-ended SSIM period (00XXX00) is expanded to from its first day",
    )
    delivery_poll_seconds: float = Field(default=0.2, gt=0)
    nats_url: str | None = Field(
        default=None,
        description="nats://host:4222[,nats://...]: distributed mode, events relayed from the "
        "database's outbox into NATS JetStream (a stream per bus); unset: the database alone",
    )
    nats_prefix: str = Field(
        default="jetbridge",
        pattern=r"^[A-Za-z0-9-]{1,32}$",
        description="first subject token and stream name prefix in NATS (see docs/deploy.md)",
    )
    nats_replicas: int = Field(
        default=1, ge=1, le=5, description="replicas of each JetStream stream jetbridge creates"
    )
    nats_delivery_shards: int = Field(
        default=4,
        ge=1,
        le=64,
        description="durable JetStream consumers per rule target, each holding a share of the "
        "partition keys in order; change it only while the deliveries stream is empty",
    )
    nats_delivery_in_flight: int = Field(
        default=32,
        ge=1,
        le=1000,
        description="deliveries one consumer (a rule target's shard) has in flight in the "
        "worker that owns it: different partition keys side by side, one key's in order",
    )
    nats_ready_backlog: int = Field(
        default=10_000,
        ge=1,
        description="/readyz says not ready while more events than this wait in the outbox",
    )
    nats_ready_age_seconds: float = Field(
        default=60.0,
        gt=0,
        description="/readyz says not ready while an event has waited in the outbox this long",
    )
    live_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="seconds between a live stream's unprompted looks at the log while commits "
        "are signalled (in memory; on PostgreSQL by LISTEN/NOTIFY): a safety net, not the path",
    )
    delivery_batch: int = Field(default=64, gt=0)
    delivery_concurrency: int = Field(default=32, gt=0)
    delivery_target_concurrency: int = Field(
        default=0,
        ge=0,
        description="most deliveries one target may have in flight in a worker, so that a slow "
        "target leaves the others room; 0: three quarters of JETBRIDGE_DELIVERY_CONCURRENCY",
    )
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
    smtp_connections: int = Field(
        default=4,
        gt=0,
        le=64,
        description="SMTP connections one process keeps open and sends on at a time",
    )
    payments_url: str | None = Field(
        default=None,
        description="PaymentIntents-style provider; unset uses the built-in test provider",
    )
    payments_api_key: str = "test"
    redis_url: str | None = Field(default=None, description="redis://host:6379/0 caches searches")
    workflow_workers: int = Field(default=4, ge=1, le=64)
    workflow_lease_seconds: float = Field(default=300.0, gt=0)
    object_store_dir: Path | None = Field(
        default=None,
        description="directory of the object store a Distributed Map reads items from and "
        "writes results to (a bucket is a directory in it); unset: no object store",
    )
    item_reader_file_roots: str = Field(
        default="",
        description="directories (absolute, separated by ':') whose files a Distributed Map's "
        "ItemReader may read through file:// URLs; unset: none",
    )
    aodb_url: str | None = Field(
        default=None, description="legacy AODB database; unset: var/aodb.db (SQLite) for the demo"
    )
    aodb_capture: str = Field(default="watermark", pattern="^(watermark|logical|binlog)$")
    aodb_mapping: Path | None = Field(default=None, description="TOML column mapping")
    settings_file: Path | None = Field(
        default=None,
        description="TOML file whose [capture] section configures AODB sources for "
        "`jetbridge capture` (see docs/flights.md)",
    )
    data_dir: Path = Field(
        default_factory=lambda: default_data_dir(),
        description="where the embedded database, its key and the demo AODB live; unset: the "
        "project's var/ when run in a jetbridge checkout, else the user's data directory",
    )
    data_keys: SecretStr | None = Field(
        default=None,
        description="KEY_ID:BASE64_32_BYTES[,...]: keys sealing personal data, the first active; "
        "unset on SQLite: a key generated once into data_dir/data-keys",
    )
    outbound_allow: str = Field(
        default="",
        max_length=8192,
        description="CIDR[:port], address[:port] or host[:port], comma-separated: internal "
        "destinations outbound HTTP (targets, webhooks, HTTP tasks) may reach; unset: none",
    )
    run_workers: bool = True
    shutdown_seconds: float = Field(
        default=20.0,
        ge=1,
        le=600,
        description="on SIGTERM or SIGINT: how long in-flight requests, deliveries, workflow "
        "tasks and capture batches may take to finish before the process exits; what is left "
        "then is handed back (its lease released) for another process or the next start",
    )
    token_secret: SecretStr | None = Field(
        default=None,
        description="secret signing jetbridge's access tokens (32+ bytes); unset: derived from "
        "the active data key, so every process with the same keys shares it",
    )
    access_token_seconds: int = Field(default=900, ge=60, le=86400)
    refresh_token_days: int = Field(default=30, ge=1, le=365)
    session_hours: int = Field(default=12, ge=1, le=24 * 30)
    tenant_write_quota: str = Field(
        default="6000/minute",
        description="state-changing requests per tenant (limits syntax, e.g. 6000/minute); off",
    )
    hub_tenant: str | None = Field(
        default=None,
        pattern=r"^[A-Z0-9]{2,8}$",
        description="the airport running the flight hub (e.g. ZRH): it owns the hub's bus and "
        "shares flight events with airlines through its own rules; unset: the operator's",
    )
    board_departed_minutes: int = Field(
        default=10,
        ge=0,
        le=24 * 60,
        description="minutes a departed flight stays on the "
        "departures board after take-off (off-block when take-off is not known)",
    )
    board_arrived_minutes: int = Field(
        default=20,
        ge=0,
        le=24 * 60,
        description="minutes an arrived flight stays on the "
        "arrivals board after on-block (touchdown when on-block is not known)",
    )
    public_boards: bool = Field(
        default=True, description="FIDS boards and flight status readable without signing in"
    )
    cookie_secure: bool = Field(
        default=False, description="mark the session cookie Secure (set when served over HTTPS)"
    )
    handler_plugins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="operator configuration: comma-separated modules imported once at start, "
        "each defining register_handlers(registry) to register its Python target handlers",
    )
    sse_heartbeat_seconds: float = Field(
        default=15.0, gt=0, description="an idle SSE stream gets a keep-alive comment this often"
    )
    sse_stall_seconds: float = Field(
        default=30.0,
        gt=0,
        description="an SSE client whose socket has taken nothing for this long is cut off; "
        "it reconnects and resumes from its Last-Event-ID",
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="an OpenID Connect issuer URL whose tokens the platform accepts; unset: none",
    )
    oidc_audience: str | None = Field(
        default=None, description="the audience (client id) the issuer's tokens must name"
    )
    oidc_jwks_url: str | None = Field(
        default=None, description="the issuer's keys; unset: discovered from its configuration"
    )
    oidc_roles_claim: str = Field(
        default="roles", description="where tokens carry role names, e.g. realm_access.roles"
    )
    oidc_role_map: str = Field(
        default="", description="provider role=jetbridge role[,...]; roles not listed are ignored"
    )
    oidc_tenant_claim: str | None = Field(
        default=None, description="the claim naming the caller's tenant (airline or airport)"
    )
    oidc_algorithms: str = Field(
        default="RS256,PS256,ES256", description="signature algorithms accepted from the issuer"
    )
    oidc_leeway_seconds: int = Field(
        default=30, ge=0, le=600, description="clock skew allowed on exp, nbf and iat"
    )
    cors_origins: str = Field(
        default="", description="origins allowed to call the API from browsers; empty: none"
    )
    rate_limit_login: str = Field(
        default="10/minute", description="sign-in requests per client address; off: unlimited"
    )
    rate_limit_public: str = Field(
        default="600/minute", description="requests per client address; off: unlimited"
    )
    rate_limit_login_paths: str = Field(
        default="/api/auth/,/login", description="path prefixes the sign-in limit applies to"
    )
    stream_connections_per_client: int = Field(
        default=10_000, ge=0, description="open event streams per client address; 0: unlimited"
    )
    trusted_proxies: str = Field(
        default="", description="proxy addresses or networks whose X-Forwarded-For is believed"
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="a bearer token (32+ characters) a Prometheus server sends to read /metrics "
        "without an account; unset: only operations and admins read it",
    )
    log_format: str = Field(
        default="text",
        pattern="^(text|json)$",
        description="json: one JSON object per log line, with trace and correlation ids",
    )
    alarm_interval_seconds: float = Field(
        default=15.0, gt=0, le=3600, description="how often the built-in alarms are evaluated"
    )
    hsts: str = Field(
        default="auto",
        pattern="^(auto|always|off)$",
        description="Strict-Transport-Security: auto (on https requests), always, off",
    )

    disruption_delay_minutes: int = Field(
        default=60, ge=1, le=24 * 60, description="a delay this long or longer is a disruption"
    )
    disruption_delay_by_airline: str = Field(
        default="",
        max_length=4096,
        description="per-airline delay thresholds in minutes, e.g. LX=30,LH=45",
    )
    min_connection_minutes: int = Field(
        default=60, ge=1, le=24 * 60, description="minimum connection time at any airport"
    )
    min_connection_by_airport: str = Field(
        default="", max_length=4096, description="per-airport minimum connection times, ZRH=40"
    )
    disruption_choice_seconds: int = Field(
        default=24 * 3600,
        ge=1,
        le=14 * 86400,
        description="how long a passenger has to choose an offer before the first is kept",
    )
    disruption_partners: str = Field(
        default="",
        max_length=4096,
        description="partner airlines whose flights are offered, e.g. LX=LH+OS,LH=LX",
    )
    sms_url: str | None = Field(
        default=None, description="base URL of an HTTP SMS gateway (POST {url}/messages)"
    )
    sms_api_key: SecretStr | None = Field(default=None, description="the SMS gateway's key")
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="the address passengers reach the platform at (signed links in notices); "
        "unset: http://host:port",
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

    @field_validator("metrics_token")
    @classmethod
    def _long_metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("JETBRIDGE_METRICS_TOKEN must be at least 32 characters")
        return value

    @field_validator("handler_plugins", mode="before")
    @classmethod
    def _plugin_modules(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        for name in value if isinstance(value, list | tuple) else ():
            if not isinstance(name, str) or not MODULE_NAME.fullmatch(name):
                raise ValueError(f"JETBRIDGE_HANDLER_PLUGINS: {name!r} is not a module name")
        return value

    @field_validator("item_reader_file_roots")
    @classmethod
    def _valid_file_roots(cls, value: str) -> str:
        from jetbridge.workflows.item_urls import parse_roots

        parse_roots(value)
        return value

    @field_validator("outbound_allow")
    @classmethod
    def _valid_outbound_allow(cls, value: str) -> str:
        try:
            parse_allow_list(value)
        except InvalidAllowList as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("disruption_delay_by_airline", "min_connection_by_airport")
    @classmethod
    def _valid_minutes(cls, value: str) -> str:
        from jetbridge.disruption.policy import parse_minutes

        parse_minutes(value)
        return value

    @field_validator("disruption_partners")
    @classmethod
    def _valid_partners(cls, value: str) -> str:
        from jetbridge.disruption.policy import parse_partners

        parse_partners(value)
        return value

    def disruption_rules(self) -> Any:
        """The disruption workflow's settings (a `jetbridge.disruption.policy.DisruptionRules`)."""
        from jetbridge.disruption.policy import DisruptionRules, parse_minutes, parse_partners

        return DisruptionRules(
            delay_minutes=self.disruption_delay_minutes,
            delay_minutes_by_airline=parse_minutes(self.disruption_delay_by_airline),
            connection_minutes=self.min_connection_minutes,
            connection_minutes_by_airport=parse_minutes(self.min_connection_by_airport),
            choice_seconds=self.disruption_choice_seconds,
            partners=parse_partners(self.disruption_partners),
        )

    def outbound_policy(self) -> OutboundPolicy:
        """What outbound HTTP to third-party URLs may reach (JETBRIDGE_OUTBOUND_ALLOW)."""
        return OutboundPolicy.from_setting(self.outbound_allow)

    @field_validator("rate_limit_login", "rate_limit_public")
    @classmethod
    def _valid_rate_limit(cls, value: str) -> str:
        from limits import parse_many

        if value.strip().lower() not in {"", "off"}:
            try:
                parse_many(value)
            except ValueError:
                raise ValueError(
                    "expected a rate such as 10/minute or 100/hour;1000/day, or off"
                ) from None
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, value: str) -> str:
        for item in setting_items(value):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"JETBRIDGE_TRUSTED_PROXIES: {item!r} is not an IP address or network"
                ) from None
        return value

    @field_validator("cors_origins")
    @classmethod
    def _valid_origins(cls, value: str) -> str:
        for item in setting_items(value):
            if not _ORIGIN.fullmatch(item):
                raise ValueError(
                    f"JETBRIDGE_CORS_ORIGINS: {item!r} is not an origin like https://app.example"
                )
        return value

    @field_validator("oidc_role_map")
    @classmethod
    def _valid_role_map(cls, value: str) -> str:
        from jetbridge.ops.identity.oidc import parse_role_map

        parse_role_map(value)
        return value

    @field_validator("oidc_algorithms")
    @classmethod
    def _valid_algorithms(cls, value: str) -> str:
        from jetbridge.ops.identity.oidc import parse_algorithms

        parse_algorithms(value)
        return value

    @model_validator(mode="after")
    def _database_in_data_dir(self) -> Settings:
        if "database_url" not in self.model_fields_set:
            self.database_url = f"sqlite:///{self.data_dir / 'jetbridge.db'}"
        return self

    @model_validator(mode="after")
    def _oidc_needs_audience(self) -> Settings:
        if self.oidc_issuer and not self.oidc_audience:
            raise ValueError(
                "JETBRIDGE_OIDC_AUDIENCE must be set with JETBRIDGE_OIDC_ISSUER: without it "
                "tokens the issuer made for other applications would be accepted"
            )
        return self

    def feed_limits(self) -> FeedLimits:
        return FeedLimits(
            max_flights=self.feed_max_flights_per_message,
            max_period_days=self.feed_max_period_days,
            open_period_days=self.feed_open_period_days,
        )

    def json_limits(self) -> JsonLimits:
        return JsonLimits(max_depth=self.json_max_depth, max_elements=self.json_max_elements)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


_ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)


def default_data_dir(cwd: Path | None = None) -> Path:
    """`var/` inside a jetbridge checkout (a developer running it there); anywhere else the
    user's data directory, so a command run from another directory finds the same data."""
    here = cwd or Path.cwd()
    project = here / "pyproject.toml"
    try:
        is_checkout = project.is_file() and 'name = "jetbridge"' in project.read_text("utf-8")
    except OSError:
        is_checkout = False
    if is_checkout:
        return Path("var")
    from platformdirs import user_data_dir

    return Path(user_data_dir("jetbridge", appauthor=False))


def setting_items(value: str) -> list[str]:
    """The entries of a comma-separated setting such as JETBRIDGE_CORS_ORIGINS, without blanks."""
    return [item.strip() for item in value.split(",") if item.strip()]
