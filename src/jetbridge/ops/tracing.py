"""OpenTelemetry tracing: spans for requests, captured changes, ingested messages, publications,
deliveries, executions and tasks, joined across the bus by the W3C `traceparent` every event
carries.

Spans carry ids and names only (bus, rule, target, handler, execution name), never personal
data. Nothing is exported unless configured with the standard variables: OTEL_TRACES_EXPORTER
=otlp or OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT (with OTEL_EXPORTER_OTLP_PROTOCOL, _HEADERS,
OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER ... as the OpenTelemetry SDK reads them). A program that
sets its own tracer provider first keeps it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)
_PROPAGATOR = TraceContextTextMapPropagator()
_configured = False


# A proxy: it follows whichever tracer provider is installed, now or later.
_TRACER = trace.get_tracer("jetbridge")
_recording = False
_UNKNOWN = object()
_PROVIDER_NAMED = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ


def tracer() -> trace.Tracer:
    return _TRACER


def recording() -> bool:
    """Whether a tracer provider is installed: without one, spans record nothing."""
    global _recording
    if _recording:
        return True
    # Asked a few times per request. While no provider is installed the SDK's getter looks the
    # environment up on every call; the installed one is read directly instead, unless the
    # environment names a provider for the SDK to load.
    if getattr(trace, "_TRACER_PROVIDER", _UNKNOWN) is None and not _PROVIDER_NAMED:
        return False
    provider = trace.get_tracer_provider()
    # A provider, once installed, stays for the life of the process: no need to ask again.
    _recording = not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))
    return _recording


def export_configured(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none" or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return exporter == "otlp" or any(
        env.get(name)
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure_tracing() -> None:
    """Export spans over OTLP when the OTEL_* variables ask for it (once per process)."""
    global _configured
    if _configured or not export_configured():
        return
    _configured = True
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "jetbridge")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    log.info("tracing: exporting spans over OTLP")


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, None outside any (recording or not) trace."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def parent_context(traceparent: str | None) -> otel_context.Context | None:
    """The context a traceparent continues; None (a new trace) when absent or invalid."""
    if not traceparent:
        return None
    found = _PROPAGATOR.extract({"traceparent": traceparent})
    span = trace.get_current_span(found)
    return found if span.get_span_context().is_valid else None


@contextmanager
def span(
    name: str,
    *,
    traceparent: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
    new_trace: bool = False,
) -> Iterator[Span]:
    """A span, current inside the block: the child of `traceparent` when given, else of the
    current span (or a root with `new_trace`). An exception marks it failed and propagates."""
    if not traceparent and not new_trace and not recording():
        # Without a tracer provider a child span is the current one's context again, recording
        # nothing: hand out the current span itself rather than make an empty one.
        yield trace.get_current_span()
        return
    parent = parent_context(traceparent)
    if parent is None and new_trace:
        parent = otel_context.Context()
    with tracer().start_as_current_span(
        name,
        context=parent,
        kind=kind,
        attributes=dict(attributes or {}),
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
