"""Composition root: builds the whole platform from one `Settings`; nothing connects at import."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import FastAPI
from sqlalchemy import Connection, Engine, update

from jetbridge.api.quotas import TenantQuota
from jetbridge.booking.facade import Bookings
from jetbridge.booking.personal_data import PersonalData
from jetbridge.booking.tasks import BookingTasks
from jetbridge.config import Settings
from jetbridge.errors import ConfigurationError
from jetbridge.events.backbone import Backbone
from jetbridge.events.delivery import DeliveryWorker, RetryTiming
from jetbridge.events.delivery_jetstream import JetStreamDeliveries
from jetbridge.events.dlq_jetstream import JetStreamDeadLetters
from jetbridge.events.handlers import Handler, HandlerRegistry
from jetbridge.events.jetstream import (
    JetStreamRelay,
    NatsWakeups,
    SubjectScheme,
    outbox_backlog,
)
from jetbridge.events.log import SqlEventLog
from jetbridge.events.publish import Publisher
from jetbridge.events.registry import ensure_bus
from jetbridge.events.replay_jetstream import JetStreamReplays
from jetbridge.events.routing import RoutingCache
from jetbridge.events.scheduler import run_periodic
from jetbridge.events.targets import TargetInvoker
from jetbridge.events.wakeups import CommitListener
from jetbridge.notify import subscriptions
from jetbridge.notify.email import Mailer, SmtpSettings
from jetbridge.ops import metrics
from jetbridge.ops.crypto import Keyring, parse_keyring
from jetbridge.ops.health import Check, database_check, nats_check, task_check
from jetbridge.ops.identity.authenticator import Authenticator
from jetbridge.ops.identity.oidc import oidc_verifier
from jetbridge.ops.identity.tokens import TokenSettings
from jetbridge.ops.keyfile import local_keyring
from jetbridge.ops.monitor import OPERATIONS_BUS, AlarmMonitor
from jetbridge.ops.outbound import OutboundPolicy, async_client
from jetbridge.ops.tracing import configure_tracing
from jetbridge.payments.http_provider import HttpPaymentProvider
from jetbridge.storage.db import create_database_engine, is_postgres
from jetbridge.storage.locks import exclusively
from jetbridge.storage.migrate import upgrade
from jetbridge.web.broadcast import LogBroadcaster
from jetbridge.web.sse import end_streams

if TYPE_CHECKING:
    from jetbridge.disruption.service import DisruptionService
from jetbridge.workflows.asl.resources import HTTP_RESOURCE
from jetbridge.workflows.engine import WorkflowEngine
from jetbridge.workflows.http_task import http_invoke
from jetbridge.workflows.item_urls import parse_roots, url_reader

_log = logging.getLogger(__name__)
AUDIT_BUS = "audit"
BOOKING_SAGA = json.loads(
    resources.files("jetbridge.workflows")
    .joinpath("definitions/booking-saga.jetbridge.asl.json")
    .read_text()
)


@dataclass(slots=True)
class Platform:
    """Every long-lived service of one jetbridge process."""

    settings: Settings
    engine: Engine
    keyring: Keyring
    backbone: Backbone
    worker: DeliveryWorker
    http: httpx.AsyncClient
    auth: Authenticator
    quota: TenantQuota
    outbound: OutboundPolicy
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stop_event: asyncio.Event | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)
    workflows: WorkflowEngine | None = None
    bookings: Bookings | None = None
    broadcasters: dict[str, LogBroadcaster] = field(default_factory=dict)
    commits: CommitListener | None = None
    relay: JetStreamRelay | None = None
    jetstream_deliveries: JetStreamDeliveries | None = None
    jetstream_replays: JetStreamReplays | None = None
    nats_wakeups: NatsWakeups | None = None
    # Readiness checks by name (database, background loops, change capture): None when ready.
    readiness: dict[str, Check] = field(default_factory=dict)
    monitor: AlarmMonitor | None = None
    disruption: DisruptionService | None = None
    # Set by a shutdown signal: readiness answers "shutting down", no new work is claimed, and
    # in-flight work has until `drain_deadline` (monotonic seconds) to finish.
    draining: bool = False
    drain_deadline: float | None = None
    # The live streams (SSE) this process serves, closed when it shuts down.
    streams: set[asyncio.Task[Any]] = field(default_factory=set)

    def broadcaster(self, bus: str) -> LogBroadcaster:
        """The process's one live reader of a bus's log, shared by every SSE client."""
        if bus not in self.broadcasters:
            self.broadcasters[bus] = LogBroadcaster(
                self.backbone,
                bus=bus,
                interval=self.settings.live_poll_seconds,
                signalled=self.commits_signalled,
                heartbeat_seconds=self.settings.sse_heartbeat_seconds,
                stall_seconds=self.settings.sse_stall_seconds,
            )
        return self.broadcasters[bus]

    def commits_signalled(self) -> bool:
        """Whether every commit that matters reaches this process as a signal: its own always
        do; on PostgreSQL other processes' do while the commit listener is connected."""
        if self.nats_wakeups is not None and self.nats_wakeups.listening:
            return True
        return self.commits is None or self.commits.listening

    def prepare(self) -> None:
        """Bring the database to the current schema and make sure the default bus exists; one
        process at a time when several start together on PostgreSQL."""
        with exclusively(self.engine, "jetbridge prepare"):
            upgrade(self.engine, keyring=self.keyring)
            with self.backbone.transaction() as conn:
                ensure_bus(conn, name="default", description="The default event bus")
                ensure_bus(conn, name=AUDIT_BUS, description="Who did what, when, from where")
                ensure_bus(conn, name=OPERATIONS_BUS, description="Alarm state changes")
                if self.monitor is not None:
                    self.monitor.prepare(conn)
                if self.settings.hub_tenant:
                    hub_owner(conn, self.settings.hub_tenant)
                subscriptions.install_rules(conn, handlers=self.backbone.handlers)
                if self.disruption is not None:
                    self.disruption.install(conn)

    async def start(self) -> None:
        """Start the delivery worker and the periodic duties (schedules, replays, retention)."""
        self.stop_event = asyncio.Event()
        if self.commits is not None:
            self.tasks.append(asyncio.create_task(self.commits.run(self.stop_event)))
        if self.nats_wakeups is not None:
            self.tasks.append(asyncio.create_task(self.nats_wakeups.run(self.stop_event)))
        if not self.settings.run_workers:
            return
        if self.relay is not None:
            self.tasks.append(asyncio.create_task(self.relay.run(self.stop_event)))
        if self.jetstream_deliveries is not None:
            self.tasks.append(asyncio.create_task(self.jetstream_deliveries.run(self.stop_event)))
        if self.jetstream_replays is not None:
            self.tasks.append(asyncio.create_task(self.jetstream_replays.run(self.stop_event)))
        self.readiness["workers"] = task_check("background", lambda: self.tasks)
        self.tasks.append(asyncio.create_task(self.worker.run(self.stop_event)))
        if self.monitor is not None:
            self.tasks.append(asyncio.create_task(self.monitor.run(self.stop_event)))
        if self.settings.mqtt_url:
            await self._start_mqtt(self.settings.mqtt_url)
        if self.workflows is not None:
            workers = self.settings.workflow_workers
            self.tasks.append(
                asyncio.create_task(self.workflows.run(self.stop_event, concurrency=workers))
            )
        self.tasks.append(
            asyncio.create_task(
                run_periodic(
                    self.engine,
                    self.backbone.publisher,
                    self.stop_event,
                    notify=self.worker.wake,
                    replays=self.jetstream_replays is None,
                )
            )
        )

    async def _start_mqtt(self, url: str) -> None:
        from jetbridge.flights.mqtt_bridge import MqttBridge
        from jetbridge.notify.mqtt import MqttAddress, MqttPublisher

        publisher = MqttPublisher(MqttAddress.parse(url))
        await asyncio.to_thread(publisher.start)
        self.closers.append(publisher.stop)
        bridge = MqttBridge(self.backbone, publisher, prefix=self.settings.mqtt_prefix)
        assert self.stop_event is not None
        self.tasks.append(asyncio.create_task(bridge.run(self.stop_event)))

    def begin_shutdown(self) -> None:
        """Stop taking new work (readiness answers "shutting down"); what is in flight has
        JETBRIDGE_SHUTDOWN_SECONDS from now to finish. Safe to call more than once."""
        self.draining = True
        if self.drain_deadline is None:
            self.drain_deadline = time.monotonic() + self.settings.shutdown_seconds
        if self.stop_event is not None:
            self.stop_event.set()
        end_streams(self.streams)

    async def stop(self) -> None:
        """Drain within the bound: background loops finish what they started; past the
        deadline they are cancelled, and a cancelled delivery hands its lease back."""
        self.begin_shutdown()
        if self.tasks:
            remaining = max(0.0, (self.drain_deadline or 0.0) - time.monotonic())
            _, pending = await asyncio.wait(self.tasks, timeout=remaining)
            for task in pending:
                task.cancel()
            if pending:
                _log.warning(
                    "shutdown: %d background loops still busy after %.0f s; their work is "
                    "handed back to be done again",
                    len(pending),
                    self.settings.shutdown_seconds,
                )
            # Gathered for their outcome only: a loop's failure was logged where it happened.
            await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        for broadcaster in self.broadcasters.values():
            await broadcaster.close()
        for close in self.closers:
            close()
        await self.http.aclose()
        self.engine.dispose()


def hub_owner(conn: Connection, airport: str) -> None:
    """The airport running the hub owns its bus (the default): its operations staff write the
    rules that share flight events with airlines."""
    from jetbridge.ops.identity import store
    from jetbridge.storage.schema import buses

    if store.get_tenant(conn, airport) is None:
        store.create_tenant(conn, tenant_id=airport, kind="airport", name=airport)
    conn.execute(update(buses).where(buses.c.name == "default").values(tenant=airport))


def data_keyring(settings: Settings) -> Keyring:
    """The keys sealing personal data: JETBRIDGE_DATA_KEYS, or on the embedded default a key
    generated once into the data directory."""
    if settings.data_keys is not None:
        return parse_keyring(settings.data_keys.get_secret_value())
    if not settings.is_sqlite:
        raise ConfigurationError(
            "JETBRIDGE_DATA_KEYS must be set when the database is not the embedded SQLite: "
            "every process needs the same keys (see docs/booking.md, Personal data)"
        )
    return local_keyring(settings.data_dir / "data-keys")


def token_settings(settings: Settings, keyring: Keyring) -> TokenSettings:
    """Access tokens are signed with JETBRIDGE_TOKEN_SECRET, or a secret derived from the data
    keys that every process of the deployment shares."""
    if settings.token_secret is not None:
        secret = settings.token_secret.get_secret_value().encode()
        if len(secret) < 32:
            raise ConfigurationError("JETBRIDGE_TOKEN_SECRET must be at least 32 bytes")
    else:
        secret = keyring.derive("jetbridge access tokens v1")
    return TokenSettings(
        secret=secret,
        access_seconds=settings.access_token_seconds,
        refresh_seconds=settings.refresh_token_days * 86400,
        session_seconds=settings.session_hours * 3600,
    )


def handler_registry(
    settings: Settings, handlers: Mapping[str, Handler] | HandlerRegistry | None = None
) -> HandlerRegistry:
    """The program's handlers, then installed packages' entry points, then the operator's
    plugin modules: the only handlers rules and callers' state machines can name."""
    registry = handlers if isinstance(handlers, HandlerRegistry) else HandlerRegistry(handlers)
    registry.load_entry_points()
    registry.load_plugins(settings.handler_plugins)
    return registry


def build_platform(
    settings: Settings, *, handlers: Mapping[str, Handler] | HandlerRegistry | None = None
) -> Platform:
    """Every service of one process; `handlers` are the Python target handlers the embedding
    program registers by name."""
    keyring = data_keyring(settings)
    configure_tracing()
    registry = handler_registry(settings, handlers)
    engine = create_database_engine(
        settings.database_url,
        busy_timeout=settings.sqlite_busy_timeout,
        pool_size=max(10, settings.workflow_workers),  # a connection for each workflow worker
    )
    metrics.observe_database(engine)
    log = SqlEventLog(engine, outbox=settings.nats_url is not None)
    routing = RoutingCache()
    publisher = Publisher(
        log=log, queue=log, routing=routing, account=settings.account, region=settings.region
    )
    backbone = Backbone(
        engine=engine,
        log=log,
        routing=routing,
        publisher=publisher,
        max_event_bytes=settings.max_event_bytes,
        handlers=registry,
        json_limits=settings.json_limits(),
    )
    outbound = settings.outbound_policy()
    verifier = oidc_verifier(settings)
    http = async_client(outbound, timeout=settings.http_target_timeout_seconds)
    worker = DeliveryWorker(
        engine=engine,
        queue=log,
        routing=routing,
        publisher=publisher,
        invoker=TargetInvoker(
            client=http,
            default_secret=settings.signing_secret,
            handlers=registry,
            threads=settings.delivery_concurrency,
        ),
        account=settings.account,
        region=settings.region,
        timing=RetryTiming(settings.retry_base_seconds, settings.retry_max_backoff_seconds),
        batch=settings.delivery_batch,
        concurrency=settings.delivery_concurrency,
        per_target=settings.delivery_target_concurrency
        or max(1, settings.delivery_concurrency * 3 // 4),
        lease_seconds=settings.delivery_lease_seconds,
        poll_seconds=settings.delivery_poll_seconds,
    )
    backbone.delivery_listeners.append(worker.wake)
    backbone.handovers = worker.handover
    smtp = (
        Mailer(
            SmtpSettings.parse(settings.smtp_url, sender=settings.smtp_sender),
            connections=settings.smtp_connections,
        )
        if settings.smtp_url
        else None
    )
    notifier = subscriptions.Notifier(backbone, http, smtp)
    registry.register_service("subscriptions.fan-out", notifier.fan_out)
    registry.register_service("subscriptions.webhook", notifier.webhook)
    registry.register_service("subscriptions.email", notifier.email)
    platform = Platform(
        settings=settings,
        engine=engine,
        keyring=keyring,
        backbone=backbone,
        worker=worker,
        http=http,
        auth=Authenticator(
            engine,
            token_settings(settings, keyring),
            external=verifier.verify if verifier is not None else None,
        ),
        outbound=outbound,
        quota=TenantQuota(settings),
        monitor=AlarmMonitor(backbone, interval=settings.alarm_interval_seconds),
    )
    platform.readiness["database"] = database_check(engine)
    if smtp is not None:
        platform.closers.append(smtp.close)
    if verifier is not None:
        platform.closers.append(verifier.close)
    if is_postgres(engine):
        platform.commits = CommitListener(
            settings.database_url, lambda _bus: platform.backbone.notify()
        )
    if settings.nats_url:
        _add_jetstream(platform, settings.nats_url)
    _add_booking(platform)
    _add_disruption(platform, smtp)
    return platform


def _add_jetstream(platform: Platform, url: str) -> None:
    """Distributed mode: the outbox relay (in processes running workers) and the push of event
    subjects to this process's live readers."""
    settings = platform.settings
    scheme = SubjectScheme(settings.nats_prefix, shards=settings.nats_delivery_shards)
    platform.relay = JetStreamRelay(
        platform.engine, url, scheme=scheme, replicas=settings.nats_replicas
    )
    platform.backbone.listeners.append(platform.relay.wake)
    dead_letters = JetStreamDeadLetters(url, scheme, replicas=settings.nats_replicas)
    platform.backbone.dead_letters = dead_letters
    platform.backbone.publisher.archive_in_database = False
    platform.jetstream_replays = JetStreamReplays(
        platform.engine, platform.backbone.publisher, url, scheme, platform.backbone.notify
    )
    platform.jetstream_deliveries = JetStreamDeliveries(
        worker=platform.worker,
        nats_url=url,
        scheme=scheme,
        dead_letters=dead_letters,
        ack_wait_seconds=settings.delivery_lease_seconds,
        in_flight=settings.nats_delivery_in_flight,
        replicas=settings.nats_replicas,
    )
    platform.nats_wakeups = NatsWakeups(url, scheme, platform.backbone.notify)
    engine = platform.engine
    platform.readiness["nats"] = nats_check(
        platform.nats_wakeups.unready,
        lambda: outbox_backlog(engine),
        most=settings.nats_ready_backlog,
        oldest_seconds=settings.nats_ready_age_seconds,
    )


def _add_disruption(platform: Platform, smtp: Mailer | None) -> None:
    """The disruption workflow on the hub's flight events (see docs/booking.md)."""
    from jetbridge.disruption import service

    settings = platform.settings
    assert platform.workflows is not None and platform.bookings is not None
    platform.disruption = service.build(
        backbone=platform.backbone,
        workflows=platform.workflows,
        bookings=platform.bookings,
        keyring=platform.keyring,
        http=platform.http,
        smtp=smtp,
        rules=settings.disruption_rules(),
        public_url=settings.public_url or f"http://{settings.host}:{settings.port}",
        sms_url=settings.sms_url,
        sms_api_key=settings.sms_api_key.get_secret_value() if settings.sms_api_key else "",
        webhook_secret=settings.signing_secret,
    )


def _add_booking(platform: Platform) -> None:
    """The booking saga on the workflow engine, paying through the configured provider."""
    settings = platform.settings
    url = settings.payments_url or f"http://{settings.host}:{settings.port}/test-payments"
    # The provider may reach the origin of this operator-configured URL, and nothing else internal.
    provider = HttpPaymentProvider(
        base_url=url, api_key=settings.payments_api_key, policy=platform.outbound
    )
    platform.closers.append(provider.close)
    personal = PersonalData(platform.keyring)
    tasks = BookingTasks(backbone=platform.backbone, payments=provider, personal=personal)
    platform.workflows = WorkflowEngine(
        platform.engine,
        {**platform.backbone.handlers.public, HTTP_RESOURCE: http_invoke(platform.outbound)},
        lease_seconds=settings.workflow_lease_seconds,
        secret=settings.signing_secret,
        json_limits=settings.json_limits(),
        max_input_bytes=settings.max_workflow_input_bytes,
        object_store=settings.object_store_dir,
        read_url=url_reader(parse_roots(settings.item_reader_file_roots), platform.outbound),
    )
    workflows = platform.workflows
    # The saga's tasks are reachable from the saga alone, never from callers' state machines.
    workflows.add_system_machine("booking", prefix="booking-", handlers=tasks.handlers())

    def start_saga(booking_id: str, saga_input: dict[str, Any]) -> None:
        workflows.start_system(
            machine="booking",
            name=f"booking-{booking_id}",
            definition=BOOKING_SAGA,
            input=saga_input,
        )

    cache = None
    if settings.redis_url:
        from jetbridge.booking.cache import RedisSearchCache

        cache = RedisSearchCache(settings.redis_url)
        platform.closers.append(cache.close)
    platform.bookings = Bookings(
        backbone=platform.backbone,
        tasks=tasks,
        start_saga=start_saga,
        personal=personal,
        cache=cache,
    )

    def start_from_event(name: str, definition: dict[str, Any], payload: Any) -> None:
        workflows.start(name=name, definition=definition, input=payload, machine="rule")

    platform.worker.invoker.start_workflow = start_from_event


def create_app(
    settings: Settings | None = None,
    *,
    platform: Platform | None = None,
    handlers: Mapping[str, Handler] | HandlerRegistry | None = None,
) -> FastAPI:
    """The HTTP application; its lifespan prepares the database and runs the workers.
    `handlers` registers the embedding program's Python target handlers by name."""
    from jetbridge.api.audit import AuditTrail
    from jetbridge.api.auth import router as auth_router
    from jetbridge.api.booking import router as booking_router
    from jetbridge.api.console import router as console_router
    from jetbridge.api.disruption import router as disruption_router
    from jetbridge.api.errors import BodySizeLimit, install_error_handlers
    from jetbridge.api.events import router as events_router
    from jetbridge.api.flights import router as flights_router
    from jetbridge.api.graphql import graphql_router
    from jetbridge.api.hardening import install_hardening
    from jetbridge.api.limits import JsonBodyLimits
    from jetbridge.api.observe import RequestMetrics
    from jetbridge.api.operations import router as operations_router
    from jetbridge.api.outage import DatabaseOutage
    from jetbridge.api.schedules import router as schedules_router
    from jetbridge.api.trips import router as trips_router
    from jetbridge.api.workflows import router as workflows_router
    from jetbridge.payments.test_provider import create_test_provider
    from jetbridge.web.account import router as account_router
    from jetbridge.web.console import router as console_page_router
    from jetbridge.web.docs import router as docs_router
    from jetbridge.web.live import router as live_router
    from jetbridge.web.pages import router as pages_router

    if platform is not None and handlers is not None:
        raise ValueError("pass handlers to build_platform when passing a platform")
    platform = platform or build_platform(settings or Settings(), handlers=handlers)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(platform.prepare)
        await platform.start()
        try:
            yield
        finally:
            await platform.stop()

    app = FastAPI(
        docs_url=None,  # served by jetbridge.web.docs with local assets
        redoc_url=None,
        # jetbridge traces requests itself: by route template, without paths or queries.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        title="jetbridge",
        version="0.1.0",
        description="Event backbone, flight information hub, workflows and booking.",
        lifespan=lifespan,
    )
    app.state.platform = platform
    install_error_handlers(app)
    app.include_router(events_router)  # first: routers are tried in order; puts are the busiest
    app.include_router(auth_router)
    app.include_router(booking_router)  # before /api/flights/{flight_key}
    app.include_router(disruption_router)
    app.include_router(flights_router)
    app.include_router(schedules_router)
    app.include_router(trips_router)
    app.include_router(workflows_router)
    app.include_router(console_router)
    app.include_router(operations_router)
    app.include_router(graphql_router())
    if not platform.settings.payments_url:
        # The built-in card network for demos and tests: only when no real provider is set.
        app.mount("/test-payments", create_test_provider())
    app.include_router(live_router)
    app.include_router(pages_router)
    app.include_router(account_router)
    app.include_router(console_page_router)
    app.include_router(docs_router)
    app.add_middleware(AuditTrail)
    app.add_middleware(BodySizeLimit, limit=4 * 1024 * 1024)
    app.add_middleware(DatabaseOutage)  # around every route and middleware using the database
    install_hardening(app, platform.settings)
    app.add_middleware(JsonBodyLimits, limits=platform.settings.json_limits())
    app.add_middleware(BodySizeLimit, limit=platform.settings.max_request_bytes)
    app.add_middleware(RequestMetrics)  # outermost: it sees every answer, refusals included
    return app
