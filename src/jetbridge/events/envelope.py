"""The event envelope: CloudEvents 1.0 with tenant, partitionkey and traceparent extensions.

Rules never see the envelope itself but its EventBridge-shaped view (`eventbridge_view`).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from jetbridge.bounds import OutOfRange, utc_moment
from jetbridge.jsonlimits import JsonLimitExceeded, JsonLimits, check_json

MAX_EVENT_BYTES = 256 * 1024
DEFAULT_LIMITS = JsonLimits()
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
_CORE = {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"}
_KNOWN_EXTENSIONS = {"tenant", "partitionkey", "traceparent", "replayname", "resources"}
_EB_FIELDS = {"Source", "DetailType", "Detail", "Resources", "Time", "TraceHeader", "EventBusName"}
_EB_OPTIONAL = {"PartitionKey", "Tenant", "Id", "Subject"}


class InvalidEvent(ValueError):
    """An event that cannot be accepted; the message names the field and the reason."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        self.index = index
        prefix = f"entries[{index}]: " if index is not None else ""
        super().__init__(prefix + message)


@dataclass(frozen=True, slots=True)
class CloudEvent:
    """A validated CloudEvents 1.0 event whose data is a JSON object."""

    source: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = None
    tenant: str | None = None
    partitionkey: str | None = None
    traceparent: str | None = None
    replayname: str | None = None
    resources: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The structured-mode CloudEvents JSON form."""
        body: dict[str, Any] = {
            "specversion": "1.0",
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": _format_time(self.time),
            "datacontenttype": "application/json",
        }
        for name in ("subject", "tenant", "partitionkey", "traceparent", "replayname"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.resources:
            body["resources"] = list(self.resources)
        body["data"] = self.data
        return body

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    def with_replay(self, name: str) -> CloudEvent:
        return replace(self, replayname=name)


def _format_time(value: datetime) -> str:
    if value.tzinfo is not UTC:  # events' times are kept in UTC already: no conversion then
        value = value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00" written as "Z"


def parse_time(value: Any, where: str) -> datetime:
    """Parse an RFC 3339 timestamp; naive times are rejected rather than guessed."""
    if not isinstance(value, str):
        raise InvalidEvent(f"{where}: expected an RFC 3339 timestamp string, got {_kind(value)}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidEvent(f"{where}: {value[:64]!r} is not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        raise InvalidEvent(f"{where}: {value[:64]!r} has no UTC offset")
    try:
        return utc_moment(parsed, where)
    except OutOfRange as exc:
        raise InvalidEvent(str(exc)) from None


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _string(body: Mapping[str, Any], name: str, *, required: bool, limit: int = 256) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidEvent(f"{name}: is required")
        return None
    if not isinstance(value, str):
        raise InvalidEvent(f"{name}: expected a string, got {_kind(value)}")
    if required and not value.strip():
        raise InvalidEvent(f"{name}: must not be empty")
    if len(value) > limit:
        raise InvalidEvent(f"{name}: longer than {limit} characters")
    return value


def cloud_event_from_dict(
    body: Any, *, max_bytes: int = MAX_EVENT_BYTES, limits: JsonLimits | None = DEFAULT_LIMITS
) -> CloudEvent:
    """Validate a CloudEvents JSON object or an EventBridge PutEvents entry; `limits` bound its
    nesting and number of values (None: not checked, for events read back from the log)."""
    if not isinstance(body, Mapping):
        raise InvalidEvent(f"expected a JSON object, got {_kind(body)}")
    if "specversion" not in body and set(body) & _EB_FIELDS:
        body = _from_eventbridge_entry(body)
    if limits is not None:
        try:
            check_json(body, limits)
        except JsonLimitExceeded as exc:
            raise InvalidEvent(str(exc)) from None
    check_size(body, max_bytes)
    if "specversion" not in body:
        raise InvalidEvent(
            "specversion: is required ('1.0') in a CloudEvents event; an EventBridge PutEvents "
            "entry has Source, DetailType and Detail instead"
        )
    if body.get("specversion") != "1.0":
        raise InvalidEvent(f"specversion: must be '1.0', got {body.get('specversion')!r}")
    unknown = set(body) - _CORE - _KNOWN_EXTENSIONS
    bad = sorted(name for name in unknown if not _EXTENSION_NAME.match(name))
    if bad:
        raise InvalidEvent(f"{bad[0]}: not a valid attribute name (lower-case letters and digits)")
    content_type = body.get("datacontenttype", "application/json")
    if content_type != "application/json" and not str(content_type).endswith("+json"):
        raise InvalidEvent(f"datacontenttype: only JSON data is accepted, got {content_type!r}")
    data = body.get("data", {})
    if not isinstance(data, dict):
        raise InvalidEvent(f"data: expected a JSON object, got {_kind(data)}")
    traceparent = _string(body, "traceparent", required=False)
    if traceparent is not None and not _TRACEPARENT.match(traceparent):
        raise InvalidEvent(
            "traceparent: not a W3C trace context value (00-<32 hex>-<16 hex>-<2 hex>)"
        )
    event_id = _string(body, "id", required=False) or str(uuid.uuid4())
    return CloudEvent(
        id=event_id,
        source=_string(body, "source", required=True) or "",
        type=_string(body, "type", required=True) or "",
        subject=_string(body, "subject", required=False, limit=1024),
        time=parse_time(body["time"], "time") if body.get("time") is not None else _now(),
        tenant=_string(body, "tenant", required=False, limit=128),
        partitionkey=_string(body, "partitionkey", required=False),
        traceparent=traceparent,
        replayname=_string(body, "replayname", required=False, limit=64),
        resources=_resources(body.get("resources")),
        data=data,
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _resources(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidEvent("resources: expected a list of strings")
    return tuple(value)


def _from_eventbridge_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(entry) - _EB_FIELDS - _EB_OPTIONAL)
    if unknown:
        raise InvalidEvent(f"{unknown[0]}: unknown field in a PutEvents entry")
    for required in ("Source", "DetailType"):
        if required not in entry:
            raise InvalidEvent(f"{required}: is required in a PutEvents entry")
    detail = entry.get("Detail", "{}")
    if not isinstance(detail, str):
        raise InvalidEvent(
            f"Detail: expected a JSON object encoded as a string, got {_kind(detail)}"
        )
    try:
        data = json.loads(detail)
    except json.JSONDecodeError as exc:
        raise InvalidEvent(f"Detail: not valid JSON ({exc.msg} at position {exc.pos})") from None
    except RecursionError:
        raise InvalidEvent("Detail: arrays and objects nested too deep") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise InvalidEvent(f"Detail: not readable JSON ({str(exc)[:80]})") from None
    body: dict[str, Any] = {
        "specversion": "1.0",
        "source": entry.get("Source"),
        "type": entry.get("DetailType"),
        "data": data,
    }
    for src, dst in (("Time", "time"), ("Resources", "resources"), ("TraceHeader", "traceparent")):
        if entry.get(src) is not None:
            body[dst] = entry[src]
    for src, dst in (("PartitionKey", "partitionkey"), ("Tenant", "tenant"), ("Id", "id")):
        if entry.get(src) is not None:
            body[dst] = entry[src]
    if entry.get("Subject") is not None:
        body["subject"] = entry["Subject"]
    return body


def check_size(body: Any, max_bytes: int) -> None:
    size = len(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())
    if size > max_bytes:
        raise InvalidEvent(f"event is {size} bytes, larger than the {max_bytes}-byte limit")


def eventbridge_view(event: CloudEvent, *, account: str, region: str) -> dict[str, Any]:
    """What rules, archives and targets see: the EventBridge event shape."""
    view: dict[str, Any] = {
        "version": "0",
        "id": event.id,
        "detail-type": event.type,
        "source": event.source,
        "account": event.tenant or account,
        "time": event.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": list(event.resources) or ([event.subject] if event.subject else []),
        "detail": event.data,
    }
    if event.replayname:
        view["replay-name"] = event.replayname
    return view


def cloud_event_from_json(text: str) -> CloudEvent:
    """Rebuild a stored event; stored events were validated on the way in."""
    return cloud_event_from_dict(json.loads(text), max_bytes=1 << 62, limits=None)
