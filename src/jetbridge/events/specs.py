"""Validated definitions of buses, rules and targets (what the API and CLI accept)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

NAME = re.compile(r"^[\.\-_A-Za-z0-9]+$")
BUS_NAME = re.compile(r"^[\.\-_A-Za-z0-9]+$")
HEADER = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")

BusName = Annotated[str, Field(min_length=1, max_length=256, pattern=BUS_NAME.pattern)]
RuleName = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME.pattern)]
TargetId = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME.pattern)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BusSpec(Strict):
    name: BusName
    description: str = Field(default="", max_length=512)


# A target's retry policy, as EventBridge bounds it (MaximumRetryAttempts,
# MaximumEventAgeInSeconds).
MAX_RETRY_ATTEMPTS = 185
MIN_EVENT_AGE_SECONDS = 60
MAX_EVENT_AGE_SECONDS = 86400
RETRY_POLICY_HELP = (
    f"retry_policy: maximum_retry_attempts 0-{MAX_RETRY_ATTEMPTS} (default "
    f"{MAX_RETRY_ATTEMPTS}) and maximum_event_age_seconds {MIN_EVENT_AGE_SECONDS}-"
    f"{MAX_EVENT_AGE_SECONDS} (default {MAX_EVENT_AGE_SECONDS}); EventBridge's "
    "MaximumRetryAttempts and MaximumEventAgeInSeconds are accepted too"
)
SCHEDULE_HELP = (
    "schedule_expression, in UTC: rate(1 minute), rate(5 minutes), rate(2 hours), rate(1 day) "
    "or cron(Minutes Hours Day-of-month Month Day-of-week Year) with exactly one of "
    "Day-of-month and Day-of-week '?', e.g. cron(0 6 ? * MON-FRI *)"
)
_RETRY_WORDS = {
    "maximum_retry_attempts": (
        f"expected a whole number from 0 to {MAX_RETRY_ATTEMPTS}: how many times a failed "
        "delivery is tried again before it goes to the dead-letter queue (0: never)"
    ),
    "maximum_event_age_seconds": (
        f"expected a whole number of seconds from {MIN_EVENT_AGE_SECONDS} (a minute) to "
        f"{MAX_EVENT_AGE_SECONDS} (a day): how old an event may get while its delivery is retried"
    ),
}


class RetryPolicy(Strict):
    """How long a failed delivery is retried before it goes to the dead-letter queue."""

    maximum_retry_attempts: int = Field(
        default=MAX_RETRY_ATTEMPTS,
        ge=0,
        le=MAX_RETRY_ATTEMPTS,
        validation_alias=AliasChoices("maximum_retry_attempts", "MaximumRetryAttempts"),
        description="retries after the first attempt, 0 to 185 (EventBridge's "
        "MaximumRetryAttempts, accepted as a name too)",
        examples=[3],
    )
    maximum_event_age_seconds: int = Field(
        default=MAX_EVENT_AGE_SECONDS,
        ge=MIN_EVENT_AGE_SECONDS,
        le=MAX_EVENT_AGE_SECONDS,
        validation_alias=AliasChoices("maximum_event_age_seconds", "MaximumEventAgeInSeconds"),
        description="how old an event may get while retried, 60 to 86400 seconds "
        "(EventBridge's MaximumEventAgeInSeconds, accepted as a name too)",
        examples=[3600],
    )

    @field_validator("maximum_retry_attempts", "maximum_event_age_seconds", mode="wrap")
    @classmethod
    def _in_words(cls, value: Any, handler: ValidatorFunctionWrapHandler, info: Any) -> Any:
        try:
            return handler(value)
        except ValidationError:
            shown = json.dumps(value) if isinstance(value, str | int | float | bool) else "that"
            raise ValueError(f"{_RETRY_WORDS[info.field_name]}; got {shown}") from None


class InputTransformerSpec(Strict):
    input_paths_map: dict[str, str] = Field(default_factory=dict)
    input_template: str = Field(max_length=8192)


class TargetSpec(Strict):
    """One target of a rule: a Python handler, an HTTP endpoint or another bus.

    `handler` is the name of a handler the program registered (checked against the registry
    when the rule is put, and again at delivery), never a module path."""

    id: TargetId
    kind: Literal["python", "http", "bus", "workflow"]
    handler: str | None = Field(default=None, max_length=256)
    url: str | None = Field(default=None, max_length=2048)
    headers: dict[str, str] = Field(default_factory=dict)
    api_key_header: str | None = Field(default=None, max_length=128)
    api_key: str | None = Field(default=None, max_length=1024)
    secret: str | None = Field(default=None, max_length=1024)
    bus: BusName | None = None
    definition: dict[str, Any] | None = None
    input: Any = None
    input_path: str | None = Field(default=None, max_length=256)
    input_transformer: InputTransformerSpec | None = None
    retry_policy: RetryPolicy = Field(
        default_factory=RetryPolicy,
        description="when a failed delivery stops being retried: " + RETRY_POLICY_HELP,
        examples=[{"maximum_retry_attempts": 3, "maximum_event_age_seconds": 3600}],
    )
    dead_letter: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header in value.items():
            if not HEADER.match(name) or "\n" in header or "\r" in header:
                raise ValueError(f"invalid header {name!r}")
        return value

    @model_validator(mode="after")
    def _kind_fields(self) -> TargetSpec:
        required = {"python": "handler", "http": "url", "bus": "bus", "workflow": "definition"}[
            self.kind
        ]
        if getattr(self, required) is None:
            raise ValueError(f"a {self.kind} target needs '{required}'")
        shaping = [
            self.input is not None,
            self.input_path is not None,
            bool(self.input_transformer),
        ]
        if sum(shaping) > 1:
            raise ValueError("set at most one of input, input_path and input_transformer")
        return self

    def input_config(self) -> dict[str, Any] | None:
        if self.input is not None:
            return {"input": self.input}
        if self.input_path is not None:
            return {"input_path": self.input_path}
        if self.input_transformer is not None:
            return {"input_transformer": self.input_transformer.model_dump()}
        return None

    def kind_config(self) -> dict[str, Any]:
        fields = (
            "handler",
            "url",
            "headers",
            "api_key_header",
            "api_key",
            "secret",
            "bus",
            "definition",
        )
        return {name: getattr(self, name) for name in fields if getattr(self, name)}


class RuleSpec(Strict):
    """A rule: an event pattern or a schedule expression, and up to five targets."""

    name: RuleName
    event_pattern: Any = Field(
        default=None,
        description="an EventBridge event pattern (a JSON object, or the same as a string); "
        "set this or schedule_expression",
        examples=[{"source": ["airport.gates"], "detail-type": ["flight.gate_changed"]}],
    )
    schedule_expression: str | None = Field(
        default=None,
        max_length=256,
        description=SCHEDULE_HELP + "; set this or event_pattern",
        examples=["rate(5 minutes)", "cron(0 6 ? * MON-FRI *)"],
    )
    state: Literal["ENABLED", "DISABLED"] = "ENABLED"
    description: str = Field(default="", max_length=512)
    targets: list[TargetSpec] = Field(default_factory=list, max_length=5)

    @model_validator(mode="after")
    def _one_trigger(self) -> RuleSpec:
        if (self.event_pattern is None) == (self.schedule_expression is None):
            raise ValueError("set exactly one of event_pattern and schedule_expression")
        ids = [target.id for target in self.targets]
        if len(ids) != len(set(ids)):
            raise ValueError("target ids must be unique within a rule")
        return self

    def pattern_json(self) -> str | None:
        if self.event_pattern is None:
            return None
        if isinstance(self.event_pattern, str):
            return self.event_pattern
        return json.dumps(self.event_pattern, separators=(",", ":"))


class ArchiveSpec(Strict):
    name: Annotated[str, Field(min_length=1, max_length=48, pattern=NAME.pattern)]
    bus: BusName
    event_pattern: Any = None
    retention_days: int = Field(default=0, ge=0, le=36500)
    description: str = Field(default="", max_length=512)


class ReplaySpec(Strict):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=NAME.pattern)]
    archive: Annotated[str, Field(min_length=1, max_length=48)]
    destination_bus: BusName
    start_time: Annotated[str, Field(max_length=64)]
    end_time: Annotated[str, Field(max_length=64)]
    rules: list[RuleName] | None = Field(default=None, max_length=100)
