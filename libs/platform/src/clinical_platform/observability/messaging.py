"""The Kafka hop of a trace: a producer span per append, consumer spans per record or batch.

The producer span's ``traceparent`` goes into the envelope's trace context, which the event
log writes into the record's headers (CloudEvents binary mode), so a consumer continues the
same trace: a record handled on its own gets a ``process`` span that is a child of the
producer span (and links to it, as the messaging conventions ask); a batch gets one span
that links to every producer span in it (a child of the only one, when all share it).

Attributes: ``messaging.*`` of OpenTelemetry's semantic conventions (system, operation,
destination topic and partition, consumer group, offset, batch size) and the event's id.
Never a key (an aggregate id), a payload or a header value.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, StatusCode

from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.observability.metrics import APPEND_DURATION
from clinical_platform.observability.recent import RECENT_TRACES
from clinical_platform.telemetry import tracer, unsampled_children_dropped, w3c_trace_context

TRACER_NAME = "clinical_platform.messaging"
# A batch links to at most this many producer spans (OpenTelemetry's default link limit).
MAX_LINKS = 128
_OUTCOMES = {
    "ConcurrencyError": "conflict",
    "WriterFencedError": "fenced",
    "WriterOverloadedError": "overloaded",
    "EventLogUnavailableError": "unavailable",
}


class IncomingRecord(Protocol):
    """The parts of a consumed Kafka record the spans read (aiokafka's ConsumerRecord)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


def _header(record: IncomingRecord, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode(errors="replace")
    return None


def producer_context(record: IncomingRecord) -> SpanContext | None:
    """The producer span the record's ``traceparent`` names, if it is valid."""
    carrier = {k: v for k in ("traceparent", "tracestate") if (v := _header(record, k))}
    span_context = trace.get_current_span(propagate.extract(carrier)).get_span_context()
    return span_context if span_context.is_valid else None


def error_type(span: Span, error: BaseException) -> None:
    """Mark the span failed with the error's class only: messages may quote data."""
    span.set_status(StatusCode.ERROR)
    span.set_attribute("error.type", type(error).__qualname__)


@contextmanager
def publishing(topic: str, partition: int, envelopes: Sequence[Envelope]) -> Iterator[Span]:
    """The PRODUCER span of one append (timed per outcome); stamps its trace context into the
    envelopes, so their records carry this span's ``traceparent``.

    Under a parent-based sampler (the SDK's default), an append inside a call that head
    sampling dropped makes no span at all: its child would be dropped too. The envelopes then
    carry the call's own ``traceparent``, unsampled, so every later hop keeps the decision."""
    parent = trace.get_current_span().get_span_context()
    if parent.is_valid and not parent.trace_flags.sampled and unsampled_children_dropped():
        _stamp(envelopes, parent)
        with _timed(topic) as outcome:
            try:
                yield trace.INVALID_SPAN
            except BaseException as error:
                outcome[0] = _OUTCOMES.get(type(error).__name__, "error")
                raise
        return
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.name": "send",
        "messaging.operation.type": "send",
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": str(partition),
        "messaging.batch.message_count": len(envelopes),
    }
    with (
        _timed(topic) as outcome,
        tracer(TRACER_NAME).start_as_current_span(
            f"send {topic}",
            kind=SpanKind.PRODUCER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span,
    ):
        _stamp(envelopes, span.get_span_context())
        try:
            yield span
        except BaseException as error:
            outcome[0] = _OUTCOMES.get(type(error).__name__, "error")
            error_type(span, error)
            raise


def _stamp(envelopes: Sequence[Envelope], span_context: SpanContext) -> None:
    header = w3c_trace_context(span_context)
    if not header:
        return
    for envelope in envelopes:
        envelope.trace_context.traceparent = header["traceparent"]
        envelope.trace_context.tracestate = header.get("tracestate", "")


@contextmanager
def _timed(topic: str) -> Iterator[list[str]]:
    """Times an append into APPEND_DURATION by its outcome (the yielded list's one item)."""
    started, outcome = time.perf_counter(), ["ok"]
    try:
        yield outcome
    finally:
        APPEND_DURATION.labels(topic, outcome[0]).observe(time.perf_counter() - started)


def _consumer_attributes(
    topic: str, group: str, *, partition: int | None = None, offset: int | None = None
) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": topic,
        "messaging.consumer.group.name": group,
    }
    if partition is not None:
        attributes["messaging.destination.partition.id"] = str(partition)
    if offset is not None:
        attributes["messaging.kafka.offset"] = offset
    return attributes


@contextmanager
def processing(record: IncomingRecord, group: str) -> Iterator[Span]:
    """A CONSUMER span for handling one record: a child of (and linked to) its producer span.

    Its context is remembered under the event's id (``ce_id``), so work that follows later in
    another task (a webhook POST, a stream message) joins the same trace.
    """
    producer = producer_context(record)
    parent = trace.set_span_in_context(trace.NonRecordingSpan(producer)) if producer else None
    with tracer(TRACER_NAME).start_as_current_span(
        f"process {record.topic}",
        context=parent if parent is not None else otel_context.Context(),
        kind=SpanKind.CONSUMER,
        links=[Link(producer)] if producer else [],
        attributes=_consumer_attributes(
            record.topic, group, partition=record.partition, offset=record.offset
        ),
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        event_id = _header(record, "ce_id")
        if event_id:
            span.set_attribute("messaging.message.id", event_id)
            RECENT_TRACES.remember(event_id, span.get_span_context(), record.timestamp)
        try:
            yield span
        except BaseException as error:
            error_type(span, error)
            raise


@contextmanager
def processing_batch(records: Sequence[IncomingRecord], group: str) -> Iterator[Span]:
    """One CONSUMER span for a batch, linked to each distinct producer span in it (at most
    `MAX_LINKS`); when they are all one, it is also that span's child."""
    producers: dict[tuple[int, int], SpanContext] = {}
    for record in records:
        found = producer_context(record)
        if found is not None and len(producers) < MAX_LINKS:
            producers.setdefault((found.trace_id, found.span_id), found)
    topics = sorted({record.topic for record in records})
    attributes = _consumer_attributes(", ".join(topics), group)
    attributes["messaging.batch.message_count"] = len(records)
    only = next(iter(producers.values())) if len(producers) == 1 else None
    parent = trace.set_span_in_context(trace.NonRecordingSpan(only)) if only else None
    with tracer(TRACER_NAME).start_as_current_span(
        f"process {topics[0] if len(topics) == 1 else 'batch'}",
        context=parent if parent is not None else otel_context.Context(),
        kind=SpanKind.CONSUMER,
        links=[Link(producer) for producer in producers.values()],
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as error:
            error_type(span, error)
            raise
