"""Notify's outgoing side: the webhook POST as an HTTP client span, the stream message as a
span, both under the consumer span that matched the event (`recent.RECENT_TRACES`).

The POST carries the span's ``traceparent``, so a receiver that traces continues the trace.
Its attributes are the method, the status code and the error class: never the URL (it may hold
credentials), the body or a header value.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, StatusCode

from clinical_platform.observability.metrics import (
    WEBHOOK_ATTEMPTS,
    WEBHOOK_DEAD_LETTERS,
    WEBHOOK_DURATION,
    WEBHOOK_LATENCY,
    WEBHOOK_QUEUE_DEPTH,
)
from clinical_platform.observability.recent import RECENT_TRACES
from clinical_platform.telemetry import tracer

TRACER_NAME = "clinical_platform.webhooks"


def _context_of(event_id: str) -> otel_context.Context:
    handled = RECENT_TRACES.get(event_id) if event_id else None
    if handled is None:
        return otel_context.Context()  # a trace of its own, not a child of whatever runs
    return trace.set_span_in_context(trace.NonRecordingSpan(handled.span_context))


@contextmanager
def webhook_post(event_id: str) -> Iterator[Span]:
    """The CLIENT span of one webhook POST of the notification for ``event_id``."""
    with tracer(TRACER_NAME).start_as_current_span(
        "POST",
        context=_context_of(event_id),
        kind=SpanKind.CLIENT,
        attributes={"http.request.method": "POST"},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def inject_trace_headers(headers: MutableMapping[str, str]) -> None:
    """Add the current span's ``traceparent`` (and ``tracestate``) to outgoing HTTP headers."""
    propagate.inject(headers)


def record_outcome(span: Span, failure: str | None) -> None:
    """Put a POST's outcome on its span: ``failure`` is notify's description of a failed
    attempt (``HTTP 503``, ``timed out``, ``connection failed (...)``: no body, no URL)."""
    if failure is None:
        return  # a 2xx: notify does not keep which one
    span.set_status(StatusCode.ERROR)
    if failure.startswith("HTTP ") and failure[5:].isdigit():
        span.set_attribute("http.response.status_code", int(failure[5:]))
    span.set_attribute("error.type", failure)


def webhook_attempted(event_id: str, *, delivered: bool, seconds: float) -> None:
    """Count one POST; a delivery also observes the time since its event was committed."""
    outcome = "delivered" if delivered else "failed"
    WEBHOOK_ATTEMPTS.labels(outcome).inc()
    WEBHOOK_DURATION.labels(outcome).observe(seconds)
    handled = RECENT_TRACES.get(event_id) if delivered and event_id else None
    if handled is not None:
        WEBHOOK_LATENCY.observe(max(0.0, time.time() - handled.record_timestamp_ms / 1000))


def webhook_dead_lettered() -> None:
    WEBHOOK_DEAD_LETTERS.inc()


# Per subscription in memory only: the gauge is their sum (a series per subscription would be
# unbounded).
_BACKLOGS: dict[str, int] = {}
WEBHOOK_QUEUE_DEPTH.set_function(lambda: float(sum(list(_BACKLOGS.values()))))


def webhook_backlog(subscription_id: str, target: int | None, head: int | None) -> None:
    """A worker's queue: the notifications numbered up to ``head`` from its next ``target``."""
    waiting = 0 if target is None or head is None else max(0, head - target + 1)
    _BACKLOGS[subscription_id] = waiting


def webhook_backlog_gone(subscription_id: str) -> None:
    """The subscription's worker stopped on this replica."""
    _BACKLOGS.pop(subscription_id, None)


@contextmanager
def stream_message(event_id: str, method: str) -> Iterator[Span]:
    """The span of one notification sent on a gRPC stream (``method``: the RPC's name).

    Not made current: the stream is an async generator, and a context attached there would be
    left attached while the generator is suspended at its ``yield``.
    """
    span = tracer(TRACER_NAME).start_span(
        f"{method} message",
        context=_context_of(event_id),
        kind=SpanKind.PRODUCER,
        attributes={"rpc.system": "grpc", "rpc.message.type": "SENT"},
    )
    try:
        yield span
    finally:
        span.end()
