"""Spans without a tracer provider (nothing exported): a child span hands out the current span
instead of making an empty one, and the trace an incoming traceparent names still reaches what
is published inside; a provider installed later is used from then on. Run in a fresh
interpreter, as a provider, once installed, stays."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
from jetbridge.ops import tracing

incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
assert not tracing.recording()
with tracing.span("outside any trace"):
    assert tracing.current_traceparent() is None
with tracing.span("HTTP POST", traceparent=incoming) as request:
    with tracing.span("publish default") as publish:
        assert publish is request
        assert tracing.current_traceparent() == incoming
    try:
        with tracing.span("failing"):
            raise KeyError("x")
    except KeyError:
        pass
    else:
        raise AssertionError("the exception was swallowed")
    assert tracing.current_traceparent() == incoming
assert tracing.current_traceparent() is None
assert not tracing.recording()

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

trace.set_tracer_provider(TracerProvider())
assert tracing.recording()  # a provider installed later is seen
with tracing.span("recorded") as recorded:
    assert recorded.is_recording()
print("ok")
"""


def test_spans_without_a_provider_keep_the_incoming_trace() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
