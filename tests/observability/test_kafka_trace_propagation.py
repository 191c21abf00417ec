"""One trace across the Kafka hop: producer span -> traceparent header -> consumer span."""

from __future__ import annotations

import pytest
from clinical_testing.observability import TOPIC, Publish, Record, an_envelope
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from clinical_platform.observability.messaging import processing, processing_batch, publishing
from clinical_platform.telemetry import w3c_trace_context

pytestmark = pytest.mark.unit


def by_kind(spans: InMemorySpanExporter, kind: SpanKind) -> list:  # type: ignore[type-arg]
    return [span for span in spans.get_finished_spans() if span.kind == kind]


def test_an_append_stamps_its_producer_spans_traceparent_into_the_envelopes(
    spans: InMemorySpanExporter,
) -> None:
    envelopes = [an_envelope(), an_envelope()]

    with publishing(TOPIC, 3, envelopes):
        pass

    [producer] = by_kind(spans, SpanKind.PRODUCER)
    context = producer.get_span_context()
    expected = ["00", f"{context.trace_id:032x}", f"{context.span_id:016x}"]
    assert [e.trace_context.traceparent.split("-")[:3] for e in envelopes] == [expected] * 2
    assert producer.name == f"send {TOPIC}"
    assert producer.attributes["messaging.system"] == "kafka"
    assert producer.attributes["messaging.destination.partition.id"] == "3"
    assert producer.attributes["messaging.batch.message_count"] == 2


def test_a_consumed_record_continues_its_producers_trace_as_child_and_link(
    spans: InMemorySpanExporter, publish: Publish
) -> None:
    record, envelope = publish()

    with processing(record, "projection.orders"):
        pass

    [producer] = by_kind(spans, SpanKind.PRODUCER)
    [consumer] = by_kind(spans, SpanKind.CONSUMER)
    assert consumer.context.trace_id == producer.context.trace_id
    assert consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id
    assert [link.context.span_id for link in consumer.links] == [producer.context.span_id]
    assert consumer.name == f"process {TOPIC}"
    assert consumer.attributes["messaging.consumer.group.name"] == "projection.orders"
    assert consumer.attributes["messaging.kafka.offset"] == 7
    assert consumer.attributes["messaging.message.id"] == envelope.event_id


def test_a_batch_links_every_producer_span_and_has_no_parent_when_they_differ(
    spans: InMemorySpanExporter, publish: Publish
) -> None:
    first, _ = publish(offset=1)
    second, _ = publish(offset=2)

    with processing_batch([first, second], "projection.orders"):
        pass

    producers = {span.context.span_id for span in by_kind(spans, SpanKind.PRODUCER)}
    [batch] = by_kind(spans, SpanKind.CONSUMER)
    assert {link.context.span_id for link in batch.links} == producers
    assert batch.parent is None
    assert batch.attributes["messaging.batch.message_count"] == 2


def test_a_batch_of_one_producers_records_is_that_producers_child(
    spans: InMemorySpanExporter, publish: Publish
) -> None:
    record, _ = publish()

    with processing_batch([record], "projection.orders"):
        pass

    [producer] = by_kind(spans, SpanKind.PRODUCER)
    [batch] = by_kind(spans, SpanKind.CONSUMER)
    assert batch.parent is not None
    assert batch.parent.span_id == producer.context.span_id


def test_a_record_without_traceparent_starts_a_trace_of_its_own(
    spans: InMemorySpanExporter,
) -> None:
    with processing(Record(TOPIC, 0, 1, 0, []), "projection.orders"):
        pass

    [consumer] = by_kind(spans, SpanKind.CONSUMER)
    assert consumer.parent is None
    assert consumer.links == ()


def test_a_failed_append_is_marked_with_the_error_class_only(
    spans: InMemorySpanExporter,
) -> None:
    class ConcurrencyError(Exception):
        pass

    with pytest.raises(ConcurrencyError), publishing(TOPIC, 0, [an_envelope()]):
        raise ConcurrencyError("Jane Doe's order moved on")

    [producer] = by_kind(spans, SpanKind.PRODUCER)
    assert producer.attributes["error.type"].endswith("ConcurrencyError")
    assert not producer.events  # no exception event: its message may quote data


def test_the_stamp_is_what_the_w3c_propagator_writes_tracestate_included() -> None:
    parent = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "opaque-1"), ("other", "2")]),
    )
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(
        carrier, context=trace.set_span_in_context(NonRecordingSpan(parent))
    )

    assert w3c_trace_context(parent) == carrier
    assert w3c_trace_context(INVALID_SPAN_CONTEXT) == {}


def test_an_append_in_a_call_that_sampling_dropped_makes_no_span_and_keeps_the_decision(
    spans: InMemorySpanExporter,
) -> None:
    unsampled = SpanContext(
        trace_id=0x1F2E3D4C5B6A79880123456789ABCDEF,
        span_id=0x0123456789ABCDEF,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.DEFAULT),
    )
    envelopes = [an_envelope()]

    with (
        trace.use_span(NonRecordingSpan(unsampled)),
        publishing(TOPIC, 0, envelopes) as span,
    ):
        assert not span.is_recording()

    assert by_kind(spans, SpanKind.PRODUCER) == []
    # The next hop sees the dropped call's own context, unsampled, and drops its spans too.
    assert envelopes[0].trace_context.traceparent == (
        f"00-{unsampled.trace_id:032x}-{unsampled.span_id:016x}-00"
    )
