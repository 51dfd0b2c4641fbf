"""The `jetbridge` command: run the platform and operate the event backbone from a shell."""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from jetbridge.bounds import utc_moment
from jetbridge.config import Settings
from jetbridge.errors import JetbridgeError
from jetbridge.ops.logs import configure_logging

if TYPE_CHECKING:
    from jetbridge.workflows.engine import WorkflowEngine

Command = Callable[[argparse.Namespace], int]


def load_json_argument(value: str, what: str) -> Any:
    """Accept inline JSON or the path of a JSON file; raise ValueError naming `what`."""
    text = value
    if not value.lstrip().startswith(("{", "[", '"')):
        path = Path(value)
        if not path.is_file():
            raise ValueError(f"{what}: {value!r} is neither JSON nor a readable file")
        text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{what}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text}")
    return value


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def cmd_up(args: argparse.Namespace) -> int:
    from jetbridge import roles
    from jetbridge.app import create_app

    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    settings = Settings(**overrides)
    configure_logging(settings.log_format)
    if args.role in {"worker", "capture"}:
        run = roles.run_worker if args.role == "worker" else roles.run_capture
        roles.run_until_signalled(partial(run, settings), settings)
        return 0
    settings = roles.api_settings(args.role, settings)
    if args.demo:
        from jetbridge.instance import claim

        # Before anything is written: a demo beside a running one must not touch its data.
        lock = claim(settings.data_dir, host=settings.host, port=settings.port)
    elif args.reset:
        raise ValueError("--reset only applies to --demo")
    app = create_app(settings)
    base = f"http://{settings.host}:{settings.port}"
    if args.demo:
        from jetbridge.demo import demo_sign_in_help, install_demo

        install_demo(app, reset=args.reset)
        print(demo_sign_in_help(base))
        print(f"data directory {settings.data_dir} held through {lock.path}")
    raise_open_file_limit()
    print(f"jetbridge listening on {base}/ (API docs at /docs)", flush=True)
    # The modules, routes and models built so far live as long as the process: the garbage
    # collector's full passes need not walk them again while requests wait.
    gc.freeze()
    roles.serve(app, settings)
    return 0


def raise_open_file_limit() -> None:
    """Every live SSE client holds a socket: allow as many as the system lets this process."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):  # an unlimited hard limit is refused
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cmd_worker(_: argparse.Namespace) -> int:
    """Run only the delivery worker and periodic duties (`jetbridge up --role worker`)."""
    from jetbridge import roles

    settings = Settings()
    configure_logging(settings.log_format)
    roles.run_until_signalled(partial(roles.run_worker, settings), settings)
    return 0


def cmd_capture(args: argparse.Namespace) -> int:
    """Capture one configured AODB source into the hub while holding its lease (see
    docs/flights.md); any number of capturers of a source may run, one is active."""
    import signal
    import threading

    from sqlalchemy.exc import IntegrityError

    from jetbridge import roles
    from jetbridge.aodb.settings import load_capture_settings
    from jetbridge.app import build_platform
    from jetbridge.flights.capture import capturer
    from jetbridge.flights.hub import FlightHub

    settings = Settings(run_workers=False)
    capture = load_capture_settings(
        args.settings or settings.settings_file,
        aodb_url=settings.aodb_url,
        aodb_capture=settings.aodb_capture,
        aodb_mapping=settings.aodb_mapping,
    )
    capture.source(args.source)  # an unknown source fails before anything connects
    configure_logging(settings.log_format)
    platform = build_platform(settings)
    try:
        platform.prepare()
    except IntegrityError:  # another process prepared the same rows at the same moment
        platform.prepare()
    stop = threading.Event()

    def signalled(*_: object) -> None:
        roles.exit_by_bound(settings)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signalled)
    worker = capturer(capture, args.source, FlightHub(platform.backbone))
    print(f"capture {args.source}: started as {worker.holder}", flush=True)
    worker.run(stop)
    platform.engine.dispose()
    return 0


def cmd_test_pattern(args: argparse.Namespace) -> int:
    from jetbridge.events.patterns import InvalidEventPattern, test_event_pattern

    try:
        pattern = load_json_argument(args.pattern, "--pattern")
        event = load_json_argument(args.event, "--event")
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    try:
        matched = test_event_pattern(pattern, event)
    except InvalidEventPattern as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"--event: {exc}", file=sys.stderr)
        return 2
    print("match" if matched else "no match")
    return 0 if matched else 1


def warn_if_new_database(settings: Settings) -> None:
    """Say so when a command is about to start from an empty embedded database: the user
    probably meant an existing one elsewhere."""
    if not settings.is_sqlite:
        return
    path = settings.database_url.removeprefix("sqlite:///")
    if path and path != ":memory:" and not Path(path).exists():
        print(
            f"warning: no database at {path}; starting an empty one. Set JETBRIDGE_DATA_DIR "
            "or JETBRIDGE_DATABASE_URL to use an existing one.",
            file=sys.stderr,
        )


def _platform() -> Any:
    from jetbridge.app import build_platform

    settings = Settings()
    warn_if_new_database(settings)
    platform = build_platform(settings)
    platform.prepare()
    return platform


def cmd_put_events(args: argparse.Namespace) -> int:
    body = load_json_argument(args.events, "events")
    entries = body if isinstance(body, list) else [body]
    published = _platform().backbone.put_events(bus=args.bus, entries=entries)
    _print([{"event_id": p.event_id, "seq": p.seq, "deliveries": p.deliveries} for p in published])
    return 0


def cmd_buses(args: argparse.Namespace) -> int:
    from jetbridge.events import registry
    from jetbridge.events.specs import BusSpec

    backbone = _platform().backbone
    with backbone.transaction() as conn:
        if args.action == "create":
            _print(registry.create_bus(conn, spec=BusSpec(name=args.name or "")))
        else:
            _print(registry.list_buses(conn))
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    from jetbridge.events import registry
    from jetbridge.events.specs import RuleSpec

    backbone = _platform().backbone
    with backbone.transaction() as conn:
        if args.action == "put":
            spec = RuleSpec.model_validate(load_json_argument(args.spec or "", "--spec"))
            _print(registry.put_rule(conn, bus=args.bus, spec=spec, handlers=backbone.handlers))
        elif args.action == "delete":
            registry.delete_rule(conn, bus=args.bus, name=args.name or "")
        else:
            _print(registry.list_rules(conn, bus=args.bus))
    return 0


def cmd_dlq(args: argparse.Namespace) -> int:
    letters = _platform().backbone.dead_letters
    if args.action == "redrive":
        _print({"redriven": letters.redrive(ids=args.id or None, bus=args.bus, rule=args.rule)})
    elif args.action == "discard":
        for letter in _one_or_more_ids(args):
            letters.discard(letter_id=letter)
        _print({"discarded": len(args.id)})
    else:
        _print(letters.list(bus=args.bus, rule=args.rule))
    return 0


FINISHED = frozenset({"COMPLETED", "CANCELLED", "FAILED"})


def cmd_replays(args: argparse.Namespace) -> int:
    """Start a replay of an archive's events (and with --wait follow it to its end), list,
    describe or cancel replays. A worker replays them (`jetbridge up` or `jetbridge worker`)."""
    from jetbridge.events import archive
    from jetbridge.events.specs import ReplaySpec

    backbone = _platform().backbone
    if args.action == "list":
        with backbone.reading() as conn:
            _print(archive.list_replays(conn))
        return 0
    if not args.name:
        raise ValueError(f"replays {args.action}: --name is required")
    if args.action == "start":
        with backbone.transaction() as conn:
            source = archive.get_archive(conn, name=args.archive or "")
            spec = ReplaySpec(
                name=args.name,
                archive=source["name"],
                destination_bus=source["bus"],
                start_time=args.start or "",
                end_time=args.end or "",
                rules=args.rules,
            )
            replay = archive.start_replay(conn, spec=spec)
    elif args.action == "cancel":
        with backbone.transaction() as conn:
            replay = archive.cancel_replay(conn, name=args.name)
    else:
        with backbone.reading() as conn:
            replay = archive.get_replay(conn, name=args.name)
    if args.wait:
        replay = _follow_replay(backbone, replay)
    _print(replay)
    return 1 if args.wait and replay["state"] != "COMPLETED" else 0


def _follow_replay(backbone: Any, replay: dict[str, Any]) -> dict[str, Any]:
    """Show a replay's progress until it ends: events replayed out of those in its range."""
    import time

    from sqlalchemy import func, select

    from jetbridge.events import archive
    from jetbridge.progress import progress
    from jetbridge.storage.schema import archive_events

    with backbone.reading() as conn:
        total = conn.execute(
            select(func.count()).where(
                archive_events.c.archive == replay["archive"],
                archive_events.c.event_time >= replay["start_time"],
                archive_events.c.event_time < replay["end_time"],
            )
        ).scalar_one()
    with progress(f"replaying {replay['name']}", total=total, unit="events") as shown:
        while True:
            shown.update(replay["events_replayed"], note=replay["state"].lower())
            if replay["state"] in FINISHED:
                break
            time.sleep(0.5)  # a worker moves it on a batch at a time
            with backbone.reading() as conn:
                replay = archive.get_replay(conn, name=replay["name"])
        if replay["state"] != "COMPLETED":
            shown.fail()
    return replay


def _one_or_more_ids(args: argparse.Namespace) -> list[int]:
    if not args.id:
        raise SystemExit("jetbridge dlq discard: name the letters with --id (one or more)")
    return list(args.id)


def _received_at(value: str | None) -> datetime:
    """The receipt time a telex without an originator time is read against."""
    if not value:
        return datetime.now(UTC)
    received = datetime.fromisoformat(value)
    if received.tzinfo is None:
        raise ValueError("needs a UTC offset")
    return utc_moment(received, "time")


def cmd_ingest(args: argparse.Namespace) -> int:
    """Parse feed files; print the canonical updates as JSON lines (--dry-run) or apply them.
    Exit 2 on a malformed file (nothing of it applied), 1 if a telex named no known flight."""
    from jetbridge.flights.feeds.errors import ParseError
    from jetbridge.flights.hub import FlightHub
    from jetbridge.flights.ingest import as_json, ingest, parse
    from jetbridge.progress import progress

    try:
        received = _received_at(args.received_at)
    except ValueError as exc:
        print(f"error: --received-at: {exc}", file=sys.stderr)
        return 2
    limits = Settings().feed_limits()
    hub = None if args.dry_run else FlightHub(_platform().backbone)
    counts = Counter[str]()
    with progress(f"ingesting {args.format}", total=len(args.files), unit="files") as shown:
        for name in args.files:
            try:
                data = Path(name).read_bytes()
            except OSError as exc:
                print(f"error: {name}: {exc}", file=sys.stderr)
                shown.fail()
                return 2
            try:
                if hub is None:
                    items = parse(args.format, data, received_at=received, file=name, limits=limits)
                    for item in items:
                        print(json.dumps(as_json(item), ensure_ascii=False))
                    counts["read"] += len(items)
                else:
                    result = ingest(
                        hub, args.format, data, received_at=received, origin=name, limits=limits
                    )
                    _report_ingested(result)
                    counts.update(
                        applied=len(result.applied),
                        refused=len(result.refused),
                        warnings=len(result.warnings),
                    )
            except ParseError as exc:
                print(f"error: {exc}", file=sys.stderr)
                shown.fail()
                return 2
            shown.advance(note=", ".join(f"{n} {what}" for what, n in counts.items()))
    return 1 if counts["refused"] else 0


def _report_ingested(result: Any) -> None:
    for outcome in result.applied:
        print(json.dumps(outcome))
    for refusal in result.refused:
        print(f"refused: {refusal['location']}: {refusal['message']}", file=sys.stderr)
    for warning in result.warnings:
        print(f"warning: {warning['location']}: {warning['message']}", file=sys.stderr)


def cmd_schedule_import(args: argparse.Namespace) -> int:
    """Publish schedule files: each passenger leg becomes a hub flight and a sellable flight.
    Exit 2 on a malformed file (nothing of any file is published then)."""
    from jetbridge.flights.feeds.errors import ParseError
    from jetbridge.progress import progress
    from jetbridge.schedules import publish_schedule, read_schedule

    limits = Settings().feed_limits()
    entries = []
    with progress("importing schedules", total=len(args.files), unit="files") as shown:
        for name in args.files:
            try:
                data = Path(name).read_bytes()
                entries += read_schedule(
                    args.format, data, currency=args.currency, file=name, limits=limits
                )
            except (OSError, ParseError) as exc:
                print(f"error: {exc}" if isinstance(exc, ParseError) else f"error: {name}: {exc}",
                      file=sys.stderr)  # fmt: skip
                shown.fail()
                return 2
            shown.advance(note=f"{len(entries)} legs read")
        if args.dry_run:
            for entry in entries:
                print(
                    json.dumps(entry.model_dump(mode="json") | {"flight_key": entry.identity.key})
                )
            return 0
        shown.update(note=f"publishing {len(entries)} legs in one transaction")
        published = publish_schedule(_platform().backbone, entries).to_json()
        shown.update(note=f"{len(entries)} legs published")
    _print(published)
    return 0


UNSUCCESSFUL = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


def cmd_workflows(args: argparse.Namespace) -> int:
    """Start (idempotent by name), run synchronously, describe, history, list, stop, redrive;
    answer or heartbeat a callback task by its token."""
    platform = _platform()
    engine: WorkflowEngine = platform.workflows
    if args.action.startswith("send-task-"):
        return _answer_task(engine, args)
    if args.action in {"start", "run"}:
        definition = load_json_argument(args.definition or "", "--definition")
        data = load_json_argument(args.input, "--input") if args.input else {}
        if args.action == "run":
            ended = engine.run_sync(name=args.name, definition=definition, input=data)
            _print(ended)
            # A run that ended badly fails the command, so scripts and CI notice.
            return 1 if ended["status"] in UNSUCCESSFUL else 0
        _print(engine.start(name=args.name, definition=definition, input=data))
    elif args.action == "describe":
        _print(engine.describe(name=args.name))
    elif args.action == "history":
        _print(engine.history(name=args.name))
    elif args.action == "stop":
        _print(engine.stop(name=args.name))
    elif args.action == "redrive":
        _print(engine.redrive(name=args.name))
    elif args.action == "describe-map-run":
        _print(engine.describe_map_run(map_run=args.map_run or ""))
    elif args.action == "list-map-runs":
        _print(engine.list_map_runs(name=args.name))
    else:
        if args.map_run:  # a Map Run's children: all of them, as ListExecutions pages through
            _print(engine.list(status=args.status, map_run=args.map_run, limit=10_000))
        else:
            _print(engine.list(status=args.status))
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    """Reseal every booking's personal data under the active key; report what it did."""
    from sqlalchemy import func, select

    from jetbridge.booking.personal_data import PersonalData, Rotation, reseal_all
    from jetbridge.progress import progress
    from jetbridge.storage.schema import bookings

    platform = _platform()
    with platform.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(bookings)).scalar_one()
    with progress("rotating data keys", total=total, unit="bookings") as shown:

        def advanced(report: Rotation) -> None:
            shown.update(
                report.rows,
                note=f"{report.resealed} values resealed, {report.current} already under "
                f"{report.active_key}",
            )

        report = reseal_all(
            platform.engine,
            PersonalData(platform.keyring),
            batch_size=args.batch_size,
            progress=advanced,
        )
    platform.engine.dispose()
    _print(report.as_json())
    if report.unreadable:
        print(
            f"error: {len(report.unreadable)} values open with no key in JETBRIDGE_DATA_KEYS; "
            "keep the keys that sealed them",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_keys_new(args: argparse.Namespace) -> int:
    """Print a new random key as KEY_ID:BASE64, to put first in JETBRIDGE_DATA_KEYS."""
    from jetbridge.ops.crypto import DataKey

    print(DataKey.generate(args.id).entry())
    return 0


def _answer_task(engine: WorkflowEngine, args: argparse.Namespace) -> int:
    if not args.task_token:
        raise ValueError(f"{args.action}: --task-token is required")
    if args.action == "send-task-success":
        output = load_json_argument(args.output, "--output") if args.output else None
        engine.send_task_success(token=args.task_token, output=output)
    elif args.action == "send-task-failure":
        if not args.error:
            raise ValueError("send-task-failure: --error is required")
        engine.send_task_failure(token=args.task_token, error=args.error, cause=args.cause or "")
    else:
        engine.send_task_heartbeat(token=args.task_token)
    return 0


def cmd_db_upgrade(_: argparse.Namespace) -> int:
    _platform()
    print("database is at the current schema")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jetbridge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the platform (HTTP API, live page, workers)")
    up.add_argument("--demo", action="store_true", help="drive it with a demo airport day")
    up.add_argument(
        "--reset",
        action="store_true",
        help="with --demo: start a new simulated day, replacing the demo AODB's data",
    )
    up.add_argument("--host")
    up.add_argument("--port", type=int)
    up.add_argument(
        "--role",
        choices=("all", "api", "worker", "capture"),
        default="all",
        help="api: HTTP only; worker: background work only; capture: AODB change capture "
        "only; all (default): everything in one process",
    )
    up.set_defaults(run=cmd_up)

    sub.add_parser("worker", help="run the delivery worker only").set_defaults(run=cmd_worker)

    capture = sub.add_parser("capture", help="capture changes from a configured AODB source")
    capture.add_argument("--source", required=True, help="a source of the [capture] settings")
    capture.add_argument(
        "--settings", type=Path, help="TOML settings file (default: JETBRIDGE_SETTINGS_FILE)"
    )
    capture.set_defaults(run=cmd_capture)

    events = sub.add_parser("events", help="event bus operations").add_subparsers(
        dest="sub", required=True
    )
    test = events.add_parser("test-pattern", help="exit 0 on match, 1 on no match, 2 if invalid")
    test.add_argument("--pattern", required=True, help="pattern JSON or a file holding it")
    test.add_argument("--event", required=True, help="event JSON or a file holding it")
    test.set_defaults(run=cmd_test_pattern)
    put = events.add_parser(
        "put",
        help="publish events (a JSON object or list, inline or a file)",
        description="Publish 1 to 100 events, all or none. Each is a CloudEvents 1.0 object "
        '(specversion "1.0", source, type; optional id, subject, time with a UTC offset, data as '
        "a JSON object, partitionkey, traceparent, tenant) or an EventBridge PutEvents entry "
        "(Source, DetailType, Detail as a JSON object encoded in a string; optional Resources, "
        "Time, TraceHeader, EventBusName, which is ignored for --bus). Sources starting with "
        "jetbridge. or aws. are the platform's own and refused. See docs/events.md.",
    )
    put.add_argument("events", help="the events: inline JSON or the path of a JSON file")
    put.add_argument("--bus", default="default")
    put.set_defaults(run=cmd_put_events)

    schedule = sub.add_parser("schedule", help="flight schedules").add_subparsers(
        dest="sub", required=True
    )
    publish = schedule.add_parser(
        "import", help="publish SSIM chapter 7, ASM/SSM or JSON schedules: hub flights + inventory"
    )
    publish.add_argument("files", nargs="+")
    publish.add_argument("--format", choices=["ssim", "asm", "json"], default="ssim")
    publish.add_argument("--currency", default="EUR", help="currency of an SSIM file's fares")
    publish.add_argument("--dry-run", action="store_true", help="print the legs, publish nothing")
    publish.set_defaults(run=cmd_schedule_import)

    buses = sub.add_parser("buses", help="list or create event buses")
    buses.add_argument("action", choices=["list", "create"])
    buses.add_argument("name", nargs="?")
    buses.set_defaults(run=cmd_buses)

    from jetbridge.events.specs import RETRY_POLICY_HELP, SCHEDULE_HELP

    rules = sub.add_parser(
        "rules",
        help="list, put or delete rules",
        description="A rule has an event_pattern or a schedule_expression, and up to five "
        f"targets. {SCHEDULE_HELP}. Each target's {RETRY_POLICY_HELP}. See docs/events.md.",
    )
    rules.add_argument("action", choices=["list", "put", "delete"])
    rules.add_argument("--bus", default="default")
    rules.add_argument(
        "--spec",
        help="rule JSON, inline or a file: name, event_pattern or schedule_expression, targets",
    )
    rules.add_argument("--name")
    rules.set_defaults(run=cmd_rules)

    dead = sub.add_parser("dlq", help="list, redrive or discard dead letters")
    dead.add_argument("action", choices=["list", "redrive", "discard"])
    dead.add_argument("--bus")
    dead.add_argument("--rule")
    dead.add_argument("--id", type=int, action="append")
    dead.set_defaults(run=cmd_dlq)

    replays = sub.add_parser(
        "replays",
        help="replay archived events: start (--wait to follow it), list, describe, cancel",
        description="A replay sends an archive's events of [--from, --to) back to the "
        "archive's bus, marked with replay-name; a running worker (jetbridge up or jetbridge "
        "worker) replays them. With --wait the command shows the progress and exits 0 when the "
        "replay completed, 1 when it was cancelled or failed.",
    )
    replays.add_argument("action", choices=["start", "list", "describe", "cancel"])
    replays.add_argument("--name", help="the replay's name")
    replays.add_argument("--archive", help="start: the archive to replay from")
    replays.add_argument(
        "--from", dest="start", help="start: first event time, RFC 3339 with an offset"
    )
    replays.add_argument("--to", dest="end", help="start: end of the range (not included)")
    replays.add_argument(
        "--rule", action="append", dest="rules", help="start: replay to this rule only (repeat)"
    )
    replays.add_argument("--wait", action="store_true", help="follow the replay until it ends")
    replays.set_defaults(run=cmd_replays)

    feed = sub.add_parser("ingest", help="parse (and apply) AIDX, MVT or ASM messages")
    feed.add_argument("format", choices=["aidx", "mvt", "asm"])
    feed.add_argument("files", nargs="+", metavar="FILE")
    feed.add_argument("--dry-run", action="store_true", help="print the updates as JSON lines only")
    feed.add_argument("--received-at", help="receipt time for telex without an originator time")
    feed.set_defaults(run=cmd_ingest)

    flows = sub.add_parser(
        "workflows",
        help="start, run, describe, list, stop or redrive executions; describe and list Map "
        "Runs; answer callback tasks",
    )
    flows.add_argument(
        "action",
        choices=[
            "start", "run", "describe", "history", "list", "stop", "redrive",
            "send-task-success", "send-task-failure", "send-task-heartbeat",
            "describe-map-run", "list-map-runs",
        ],
    )  # fmt: skip
    flows.add_argument("--name", default="")
    flows.add_argument("--definition", help="ASL definition JSON or a file holding it")
    flows.add_argument("--input", help="input JSON or a file holding it")
    flows.add_argument(
        "--status", choices=["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]
    )
    flows.add_argument(
        "--map-run", help="describe-map-run: the Map Run's id; list: only its child executions"
    )
    flows.add_argument("--task-token", help="the token a .waitForTaskToken task handed out")
    flows.add_argument("--output", help="send-task-success: the task's output JSON or a file")
    flows.add_argument("--error", help="send-task-failure: the error name")
    flows.add_argument("--cause", help="send-task-failure: the cause")
    flows.set_defaults(run=cmd_workflows)

    keys = sub.add_parser("keys", help="data encryption keys").add_subparsers(
        dest="sub", required=True
    )
    rotate = keys.add_parser(
        "rotate", help="reseal personal data under the active key (idempotent, resumable)"
    )
    rotate.add_argument(
        "--batch-size", type=_positive, default=500, help="bookings per transaction"
    )
    rotate.set_defaults(run=cmd_keys_rotate)
    new = keys.add_parser("new", help="print a new key entry for JETBRIDGE_DATA_KEYS")
    new.add_argument("--id", required=True, help="key id, e.g. k2027")
    new.set_defaults(run=cmd_keys_new)

    db = sub.add_parser("db", help="database maintenance").add_subparsers(dest="sub", required=True)
    db.add_parser("upgrade", help="apply migrations").set_defaults(run=cmd_db_upgrade)

    from jetbridge.cli_identity import add_commands

    add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Command = args.run
    try:
        return run(args)
    except ValidationError as exc:
        print(f"error: {in_words(exc)}", file=sys.stderr)
        return 2
    except (JetbridgeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def in_words(exc: ValidationError) -> str:
    """Each problem as `where: what`, without the validator's links and input dumps; a
    setting is named by its environment variable."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"])
        if exc.title == "Settings" and where:
            where = f"JETBRIDGE_{where.upper()}"
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


if __name__ == "__main__":
    sys.exit(main())
