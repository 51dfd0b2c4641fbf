"""Table definitions shared by the services; Alembic migrations create exactly these."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

metadata = MetaData()

# SQLite only aliases the rowid for INTEGER PRIMARY KEY, so big integer keys use that there.
BigId = BigInteger().with_variant(Integer(), "sqlite")

buses = Table(
    "buses",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("description", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Column("rules_version", Integer, nullable=False, server_default="0"),
    # The airline or airport that owns the bus; NULL: the platform's own (the flight hub's).
    Column("tenant", String(16), nullable=True),
)

rules = Table(
    "rules",
    metadata,
    Column("bus", String(256), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("pattern", Text, nullable=True),
    Column("schedule", String(256), nullable=True),
    Column("state", String(16), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("schedule_last_fired", Float, nullable=True),
)

targets = Table(
    "targets",
    metadata,
    Column("bus", String(256), primary_key=True),
    Column("rule", String(64), primary_key=True),
    Column("target_id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("config", Text, nullable=False),
    Column("input", Text, nullable=True),
    Column("max_retry_attempts", Integer, nullable=False),
    Column("max_event_age_seconds", Integer, nullable=False),
    Column("dead_letter", Boolean, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("bus", String(256), nullable=False),
    Column("event_id", String(256), nullable=False),
    Column("source", String(256), nullable=False),
    Column("type", String(256), nullable=False),
    Column("tenant", String(128), nullable=False),
    Column("partition_key", String(256), nullable=True),
    Column("event_time", Float, nullable=False),
    Column("ingested_at", Float, nullable=False),
    Column("replay_name", String(64), nullable=False, server_default=""),
    Column("body", Text, nullable=False),
    UniqueConstraint("bus", "source", "event_id", "replay_name", name="uq_events_identity"),
)
Index("ix_events_bus_seq", events.c.bus, events.c.seq)
Index("ix_events_ingested", events.c.ingested_at)

# Events a transaction appended while NATS is configured, until the relay has put them into
# JetStream (then the row is deleted); in id order, which per flight is commit order.
jetstream_outbox = Table(
    "jetstream_outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("event_seq", BigInteger, nullable=False),
    # JSON [[rule, target id], ...]: the deliveries JetStream carries for this event.
    Column("targets", Text, nullable=True),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("event_seq", BigInteger, nullable=False),
    Column("bus", String(256), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("target_id", String(64), nullable=False),
    Column("lane", String(600), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_until", Float, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
)
Index("ix_deliveries_due", deliveries.c.next_attempt_at, deliveries.c.id)
Index("ix_deliveries_lane", deliveries.c.lane, deliveries.c.id)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("event_seq", BigInteger, nullable=False),
    Column("bus", String(256), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("target_id", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("failed_at", Float, nullable=False),
    Column("redriven_at", Float, nullable=True),
)
Index("ix_dead_letters_target", dead_letters.c.bus, dead_letters.c.rule, dead_letters.c.target_id)

archives = Table(
    "archives",
    metadata,
    Column("name", String(48), primary_key=True),
    Column("bus", String(256), nullable=False),
    Column("pattern", Text, nullable=True),
    Column("retention_days", Integer, nullable=False, server_default="0"),
    Column("description", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
)

archive_events = Table(
    "archive_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("archive", String(48), nullable=False),
    Column("event_time", Float, nullable=False),
    Column("archived_at", Float, nullable=False),
    Column("body", Text, nullable=False),
)
Index("ix_archive_events_time", archive_events.c.archive, archive_events.c.event_time)

replays = Table(
    "replays",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("archive", String(48), nullable=False),
    Column("destination_bus", String(256), nullable=False),
    Column("rules", Text, nullable=True),
    Column("start_time", Float, nullable=False),
    Column("end_time", Float, nullable=False),
    Column("state", String(16), nullable=False),
    Column("state_reason", Text, nullable=False, server_default=""),
    Column("cursor", BigInteger, nullable=False, server_default="0"),
    Column("events_replayed", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("consumer", String(128), primary_key=True),
    Column("event_id", String(256), primary_key=True),
    Column("processed_at", Float, nullable=False),
)

# Flight information hub -------------------------------------------------------------------

flights = Table(
    "flights",
    metadata,
    Column("flight_key", String(64), primary_key=True),
    Column("airline", String(3), nullable=False),
    Column("flight_number", String(5), nullable=False),
    Column("origin_date", String(10), nullable=False),
    Column("departure_airport", String(3), nullable=False),
    Column("arrival_airport", String(3), nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_flights_departure", flights.c.departure_airport, flights.c.origin_date)
Index("ix_flights_arrival", flights.c.arrival_airport, flights.c.origin_date)
Index("ix_flights_number", flights.c.airline, flights.c.flight_number, flights.c.origin_date)

ingest_errors = Table(
    "ingest_errors",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("location", String(512), nullable=False, server_default=""),
    Column("message", Text, nullable=False),
    Column("excerpt", Text, nullable=False, server_default=""),
    Column("received_at", Float, nullable=False),
    # `error`: the message was refused; `warning`: accepted, with a part not understood.
    Column("level", String(16), nullable=False, server_default="error"),
)
Index("ix_ingest_errors_source", ingest_errors.c.source, ingest_errors.c.id)

cdc_positions = Table(
    "cdc_positions",
    metadata,
    Column("source", String(128), primary_key=True),
    Column("position", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# One capturer per source: whoever holds the lease (fenced by its generation) applies changes
# and stores the source position after them in the same transaction.
capture_leases = Table(
    "capture_leases",
    metadata,
    Column("source", String(128), primary_key=True),
    Column("holder", String(256), nullable=False, server_default=""),
    Column("generation", Integer, nullable=False, server_default=text("0")),
    Column("lease_until", Float, nullable=False, server_default=text("0")),
    Column("position", Text, nullable=True),
    Column("updated_at", Float, nullable=False),
)

# Which flight a legacy row stands for, so a delete carrying only the row's key names it.
capture_keys = Table(
    "capture_keys",
    metadata,
    Column("source", String(128), primary_key=True),
    Column("row_key", String(256), primary_key=True),
    Column("flight_key", String(64), nullable=False),
)

# Booking ------------------------------------------------------------------------------------

scheduled_flights = Table(
    "scheduled_flights",
    metadata,
    Column("flight_id", String(32), primary_key=True),
    Column("airline", String(3), nullable=False),
    Column("flight_number", String(5), nullable=False),
    Column("origin", String(3), nullable=False),
    Column("destination", String(3), nullable=False),
    Column("departure_date", String(10), nullable=False),
    Column("departs_at", Float, nullable=False),
    Column("arrives_at", Float, nullable=False),
    Column("aircraft_type", String(4), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("fares", Text, nullable=False),
    # The hub's flight leg this sellable flight is (`LX0100-2026-11-24-ZRH-LHR`).
    Column("flight_key", String(64), nullable=False),
)
Index(
    "ix_scheduled_route",
    scheduled_flights.c.origin,
    scheduled_flights.c.destination,
    scheduled_flights.c.departure_date,
)
Index("ix_scheduled_flight_key", scheduled_flights.c.flight_key, unique=True)

# A marketing carrier's number on another airline's leg: sold as the operating flight.
codeshare_flights = Table(
    "codeshare_flights",
    metadata,
    Column("marketing_id", String(32), primary_key=True),
    Column("airline", String(3), nullable=False),
    Column("flight_number", String(5), nullable=False),
    Column("flight_id", String(32), nullable=False),
)
Index("ix_codeshare_operating", codeshare_flights.c.flight_id)

seats = Table(
    "seats",
    metadata,
    Column("flight_id", String(32), primary_key=True),
    Column("seat", String(4), primary_key=True),
    Column("cabin", String(16), nullable=False),
    Column("status", String(8), nullable=False),
    Column("hold_id", String(64), nullable=True),
    Column("hold_expires_at", Float, nullable=True),
    Column("booking_id", String(36), nullable=True),
)
Index("ix_seats_available", seats.c.flight_id, seats.c.cabin, seats.c.status)
Index("ix_seats_hold", seats.c.hold_id)

bookings = Table(
    "bookings",
    metadata,
    Column("booking_id", String(36), primary_key=True),
    Column("locator", String(6), nullable=False, unique=True),
    Column("status", String(16), nullable=False),
    Column("flight_id", String(32), nullable=False),
    Column("cabin", String(16), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    # An idempotency key is its caller's own; the keyed digest of the request it made
    # (jetbridge.booking.idempotency) tells a repeat from another request under the same key.
    Column("caller", String(255), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    Column("request_fingerprint", String(128), nullable=True),
    # The airline selling the flight (the tenant its bookings belong to).
    Column("tenant", String(16), nullable=True),
    # Sealed (jetbridge.ops.crypto): the passengers' names and documents, and the payment card
    # until the booking settles.
    Column("passengers", Text, nullable=False),
    Column("passenger_count", Integer, nullable=False),
    Column("payment_card", Text, nullable=True),
    Column("payment_id", String(64), nullable=True),
    Column("failure", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("caller", "idempotency_key", name="uq_bookings_caller_key"),
)
Index("ix_bookings_customer", bookings.c.customer_id)

tickets = Table(
    "tickets",
    metadata,
    Column("ticket_number", String(13), primary_key=True),
    Column("booking_id", String(36), nullable=False),
    Column("passenger_index", Integer, nullable=False),
    Column("seat", String(4), nullable=False),
    Column("issued_at", Float, nullable=False),
    UniqueConstraint("booking_id", "passenger_index", name="uq_ticket_passenger"),
)

# A booking's flights in travel order (a connection is two); `bookings.flight_id` and `cabin`
# are its first segment's.
booking_segments = Table(
    "booking_segments",
    metadata,
    Column("booking_id", String(36), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("flight_id", String(32), nullable=False),
    Column("cabin", String(16), nullable=False),
)
Index("ix_booking_segments_flight", booking_segments.c.flight_id)

# A ticket's flight coupons, one per segment, each with the passenger's seat on that flight.
ticket_coupons = Table(
    "ticket_coupons",
    metadata,
    Column("ticket_number", String(13), primary_key=True),
    Column("coupon", Integer, primary_key=True),
    Column("booking_id", String(36), nullable=False),
    Column("flight_id", String(32), nullable=False),
    Column("seat", String(4), nullable=False),
)
Index("ix_ticket_coupons_booking", ticket_coupons.c.booking_id)

counters = Table(
    "counters",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

loyalty_accounts = Table(
    "loyalty_accounts",
    metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("points", BigInteger, nullable=False),
    Column("tier", String(8), nullable=False),
    Column("updated_at", Float, nullable=False),
)

loyalty_ledger = Table(
    "loyalty_ledger",
    metadata,
    Column("booking_id", String(36), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("at", Float, nullable=False),
)

payments = Table(
    "payments",
    metadata,
    Column("booking_id", String(36), primary_key=True),
    Column("payment_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("refunded", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", Float, nullable=False),
)

reconciliation = Table(
    "payment_reconciliation",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("booking_id", String(36), nullable=False),
    Column("payment_id", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("error", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("resolved_at", Float, nullable=True),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("subscription_id", String(36), primary_key=True),
    Column("flight_key", String(64), nullable=False),
    Column("channel", String(8), nullable=False),
    Column("target", String(2048), nullable=False),
    Column("secret", String(128), nullable=True),
    Column("from_version", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("tenant", String(16), nullable=True),
    Column("owner", String(128), nullable=True),
)
Index("ix_subscriptions_flight", subscriptions.c.flight_key, subscriptions.c.active)

# Workflows ----------------------------------------------------------------------------------

executions = Table(
    "workflow_executions",
    metadata,
    Column("name", String(80), primary_key=True),
    Column("machine", String(80), nullable=False),
    Column("definition", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("input", Text, nullable=False),
    Column("output", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("cause", Text, nullable=True),
    Column("started_at", Float, nullable=False),
    Column("stopped_at", Float, nullable=True),
    # A worker's lease; while parked (waiting for task tokens) the moment to look again.
    Column("lease_until", Float, nullable=True),
    Column("parked", Boolean, nullable=False, server_default=false()),
    # An answer arrived since the worker holding the execution last looked.
    Column("woken", Boolean, nullable=False, server_default=false()),
    Column("tenant", String(16), nullable=True),
    # Incremented by every claim; a worker writes only while it still holds its generation.
    Column("generation", Integer, nullable=False, server_default=text("0")),
    # The W3C trace the execution continues (the request or event that started it).
    Column("traceparent", String(55), nullable=True),
    # Redrives (RedriveExecution): how many, and when the latest one happened.
    Column("redrive_count", Integer, nullable=False, server_default=text("0")),
    Column("redriven_at", Float, nullable=True),
    # A Distributed Map's child execution: the Map Run that started it.
    Column("map_run", String(36), nullable=True),
)
Index("ix_executions_status", executions.c.status, executions.c.lease_until)
Index("ix_executions_map_run", executions.c.map_run)

# A Distributed Map's Map Run: the child executions one Map state starts, and their settings.
map_runs = Table(
    "workflow_map_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("execution", String(80), nullable=False),  # the parent execution
    Column("state", String(80), nullable=False),
    Column("tenant", String(16), nullable=True),
    Column("machine", String(80), nullable=False),  # the children's state machine name
    Column("status", String(16), nullable=False),  # RUNNING, SUCCEEDED, FAILED, ABORTED
    Column("execution_type", String(16), nullable=False),  # STANDARD or EXPRESS
    Column("max_concurrency", Integer, nullable=False),  # 0: as many as allowed
    Column("tolerated_count", Integer, nullable=True),
    Column("tolerated_percentage", Float, nullable=True),
    Column("processor", Text, nullable=False),  # the ItemProcessor the children run
    Column("inputs", Text, nullable=False),  # each child's input, a JSON array
    Column("item_count", Integer, nullable=False),
    # EXPRESS children are not stored: how many ended each way, as JSON.
    Column("counts", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("cause", Text, nullable=True),
    Column("started_at", Float, nullable=False),
    Column("stopped_at", Float, nullable=True),
    Column("redrive_count", Integer, nullable=False, server_default=text("0")),
    Column("redriven_at", Float, nullable=True),
    # The parent's redrive count when the Map Run last started: a later one redrives it.
    Column("parent_redrive", Integer, nullable=False, server_default=text("0")),
)
Index("ix_map_runs_execution", map_runs.c.execution)

execution_events = Table(
    "workflow_events",
    metadata,
    Column("execution", String(80), primary_key=True),
    Column("event_id", Integer, primary_key=True),
    Column("body", Text, nullable=False),
)

task_tokens = Table(
    "workflow_task_tokens",
    metadata,
    Column("token", String(256), primary_key=True),
    Column("execution", String(80), nullable=False),
    Column("state", String(256), nullable=False),
    Column("status", String(16), nullable=False),  # WAITING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED
    Column("output", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("cause", Text, nullable=True),
    Column("issued_at", Float, nullable=False),
    Column("beat_at", Float, nullable=False),
    Column("timeout_at", Float, nullable=False),
    Column("heartbeat_seconds", Integer, nullable=True),
)
Index("ix_task_tokens_execution", task_tokens.c.execution, task_tokens.c.status)


# Identities and tenants ----------------------------------------------------------------------

tenants = Table(
    "tenants",
    metadata,
    Column("tenant_id", String(16), primary_key=True),
    Column("kind", String(16), nullable=False),  # airline, airport
    Column("name", String(128), nullable=False),
    Column("bus", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("user_id", String(36), primary_key=True),
    Column("username", String(128), nullable=False, unique=True),
    Column("password_hash", String(256), nullable=False),
    Column("roles", String(256), nullable=False),
    Column("tenant", String(16), nullable=True),
    Column("disabled", Boolean, nullable=False, server_default=false()),
    Column("created_at", Float, nullable=False),
    Column("last_login_at", Float, nullable=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("roles", String(256), nullable=False),
    Column("tenant", String(16), nullable=True),
    Column("created_by", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    Column("last_used_at", Float, nullable=True),
)

# Refresh tokens (API) and page sessions: only hashes are stored; a used refresh token is replaced
# and a replayed one revokes its whole family.
credentials = Table(
    "credentials",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # refresh, session
    Column("user_id", String(36), nullable=False),
    Column("family", String(36), nullable=False),
    Column("csrf", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)
Index("ix_credentials_family", credentials.c.family)
Index("ix_credentials_user", credentials.c.user_id)

# Operations ---------------------------------------------------------------------------------

alarms = Table(
    "alarms",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("value", Float, nullable=True),
    Column("reason", Text, nullable=False, server_default=""),
    Column("changed_at", Float, nullable=False),
)

# Disruption handling (jetbridge.disruption): what the platform knows of each disrupted flight,
# each affected booking's case, the notices sent, passengers' contacts and reissued tickets.
disruptions = Table(
    "disruptions",
    metadata,
    Column("flight_key", String(64), primary_key=True),
    Column("kind", String(24), primary_key=True),
    Column("airline", String(3), nullable=False),
    # The newest flight version seen for this kind, and what its notice said (as a digest).
    Column("version", Integer, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("summary", Text, nullable=False),
    Column("execution", String(80), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_disruptions_airline", disruptions.c.airline, disruptions.c.updated_at)

disruption_cases = Table(
    "disruption_cases",
    metadata,
    Column("flight_key", String(64), primary_key=True),
    Column("booking_id", String(36), primary_key=True),
    Column("kind", String(24), nullable=False),
    Column("airline", String(3), nullable=False),
    # affected, waiting (offers held), rebooked, refunded, superseded (settled by another case)
    Column("status", String(16), nullable=False),
    Column("offers", Text, nullable=True),
    Column("new_flight_id", String(32), nullable=True),
    # The passenger's answer (JSON) and the rebooking workflow's task token waiting for it.
    Column("choice", Text, nullable=True),
    Column("task_token", String(256), nullable=True),
    Column("choose_by", Float, nullable=True),
    Column("notified_at", Float, nullable=True),
    Column("updated_at", Float, nullable=False),
)
Index("ix_disruption_cases_booking", disruption_cases.c.booking_id)

disruption_notices = Table(
    "disruption_notices",
    metadata,
    # booking, flight, kind and the notice's digest: the same notice is recorded (and sent) once.
    Column("notice_id", String(200), primary_key=True),
    Column("booking_id", String(36), nullable=False),
    Column("flight_key", String(64), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)
Index("ix_disruption_notices_booking", disruption_notices.c.booking_id)

# Sealed (jetbridge.ops.crypto): how a booking's passengers want to hear of disruptions.
booking_contacts = Table(
    "booking_contacts",
    metadata,
    Column("booking_id", String(36), primary_key=True),
    Column("contacts", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

ticket_reissues = Table(
    "ticket_reissues",
    metadata,
    Column("old_ticket", String(13), primary_key=True),
    Column("new_ticket", String(13), nullable=False),
    Column("booking_id", String(36), nullable=False),
    Column("passenger_index", Integer, nullable=False),
    Column("flight_id", String(32), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("at", Float, nullable=False),
)
