"""The envelope: provenance from the command, validation without echoing values, Kafka headers."""

from __future__ import annotations

import uuid

import pytest
from eventsourcing.domain import Aggregate, event
from google.protobuf.wrappers_pb2 import StringValue
from opentelemetry.sdk.trace import TracerProvider

from clinical.events.v1 import envelope_pb2, payload_encryption_pb2, provenance_pb2
from clinical_platform.eventlog.codec import DomainEvent, EventCatalog
from clinical_platform.eventlog.context import Actor, CommandContext
from clinical_platform.eventlog.envelope import (
    build_envelope,
    cloudevents_headers,
    validate_envelope,
)
from clinical_platform.eventlog.errors import EventRejectedError

pytestmark = pytest.mark.unit

PATIENT_NAME = "Jane Q. Doe"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SOURCE = "//clinical/notes"


class Note(Aggregate):
    # A well-known type as the payload (its one field is `value`), so no test protos are needed.
    @event("NoteWritten")
    def __init__(self, value: str) -> None:
        self.text = value


CATALOG = EventCatalog(Note, {"NoteWritten": StringValue}, schema_version=3)


def a_context(**overrides: object) -> CommandContext:
    values: dict[str, object] = {
        "actor": Actor("dr-house", ("clinician",), "ward-tablet", "dr-cuddy"),
        "request_id": "req-1",
        "purpose_of_use": "ETREAT",
        "source_ip": "2001:db8::7",
        "user_agent": "ward-tablet/2.1",
        "trace_context": {"traceparent": TRACEPARENT},
    }
    values.update(overrides)
    return CommandContext(**values)  # type: ignore[arg-type]


def a_written_note() -> DomainEvent:
    return Note(value=f"{PATIENT_NAME} reports chest pain").collect_events()[0]


def an_envelope(**context_overrides: object) -> envelope_pb2.Envelope:
    return build_envelope(
        event=a_written_note(),
        catalog=CATALOG,
        context=a_context(**context_overrides),
        source=SOURCE,
    )


def test_envelope_carries_the_event_and_the_provenance_of_its_command() -> None:
    written = a_written_note()

    envelope = build_envelope(event=written, catalog=CATALOG, context=a_context(), source=SOURCE)

    assert uuid.UUID(envelope.event_id).version == 4
    assert (envelope.event_type, envelope.schema_version) == ("NoteWritten", 3)
    assert (envelope.aggregate_type, envelope.source) == ("Note", SOURCE)
    assert envelope.aggregate_id == str(written.originator_id)
    assert envelope.aggregate_version == 1
    assert envelope.occurred_at.ToDatetime(tzinfo=written.timestamp.tzinfo) == written.timestamp
    assert envelope.actor == provenance_pb2.Actor(
        subject="dr-house", roles=["clinician"], client_id="ward-tablet", on_behalf_of="dr-cuddy"
    )
    assert envelope.purpose_of_use == provenance_pb2.PURPOSE_OF_USE_ETREAT
    assert (envelope.request_id, envelope.correlation_id, envelope.causation_id) == ("req-1",) * 3
    assert (envelope.source_ip, envelope.user_agent) == ("2001:db8::7", "ward-tablet/2.1")
    assert envelope.trace_context == provenance_pb2.TraceContext(traceparent=TRACEPARENT)
    assert envelope.payload_type == "google.protobuf.StringValue"
    assert StringValue.FromString(envelope.payload).value.startswith(PATIENT_NAME)
    encryption = envelope.payload_encryption.algorithm
    assert encryption == payload_encryption_pb2.ENCRYPTION_ALGORITHM_NONE
    assert not envelope.HasField("recorded_at")
    assert (envelope.prev_hash, envelope.hash) == (b"", b"")
    validate_envelope(envelope, max_envelope_bytes=4096)


def test_given_correlation_and_causation_ids_are_kept() -> None:
    envelope = an_envelope(correlation_id="flow-9", causation_id="event-8")

    assert (envelope.correlation_id, envelope.causation_id) == ("flow-9", "event-8")


def test_trace_context_comes_from_the_active_span_when_the_command_has_none() -> None:
    # A provider of the test's own: the process-wide one is left alone.
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("record note") as span:
        envelope = an_envelope(trace_context={})
    span_context = span.get_span_context()

    trace_id, span_id, flags = span_context.trace_id, span_context.span_id, span_context.trace_flags
    assert envelope.trace_context.traceparent == f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"


def test_no_span_and_no_trace_context_leaves_the_trace_empty() -> None:
    assert an_envelope(trace_context={}).trace_context == provenance_pb2.TraceContext()


@pytest.mark.parametrize("code", ["TREATMENT", "UNSPECIFIED", "treat", ""])
def test_unknown_purpose_of_use_is_rejected_by_field_name(code: str) -> None:
    with pytest.raises(EventRejectedError) as rejected:
        an_envelope(purpose_of_use=code)

    assert [violation.field for violation in rejected.value.violations] == ["purpose_of_use"]


def test_every_violation_is_reported_at_once_without_the_offending_values() -> None:
    envelope = envelope_pb2.Envelope(
        event_id=PATIENT_NAME,
        aggregate_type=PATIENT_NAME,
        aggregate_id=str(uuid.uuid4()).upper(),
        event_type=PATIENT_NAME,
        request_id=f"{PATIENT_NAME}\n",
        source_ip=PATIENT_NAME,
        user_agent=PATIENT_NAME * 50,
    )

    with pytest.raises(EventRejectedError) as rejected:
        validate_envelope(envelope, max_envelope_bytes=1_000_000)

    assert {violation.field for violation in rejected.value.violations} == {
        "event_id",
        "aggregate_type",
        "aggregate_id",
        "aggregate_version",
        "event_type",
        "schema_version",
        "occurred_at",
        "actor.subject",
        "purpose_of_use",
        "request_id",
        "source_ip",
        "user_agent",
        "payload_type",
    }
    assert PATIENT_NAME not in str(rejected.value)
    assert all(PATIENT_NAME not in v.description for v in rejected.value.violations)


def test_an_empty_request_id_is_a_violation() -> None:
    envelope = an_envelope()
    envelope.request_id = ""

    with pytest.raises(EventRejectedError, match="request_id"):
        validate_envelope(envelope, max_envelope_bytes=4096)


def test_oversized_envelope_is_refused_with_its_size_and_the_limit() -> None:
    envelope = an_envelope()
    size = envelope.ByteSize()
    validate_envelope(envelope, max_envelope_bytes=size)

    with pytest.raises(EventRejectedError) as rejected:
        validate_envelope(envelope, max_envelope_bytes=size - 1)

    (violation,) = rejected.value.violations
    assert violation.field == "envelope"
    assert f"{size} bytes" in violation.description
    assert f"{size - 1}-byte limit" in violation.description


def test_kafka_headers_follow_the_cloudevents_binding() -> None:
    envelope = an_envelope(trace_context={"traceparent": TRACEPARENT, "tracestate": "vendor=1"})
    envelope.occurred_at.FromJsonString("2025-03-04T08:15:30.123456Z")

    assert cloudevents_headers(envelope) == [
        ("ce_specversion", b"1.0"),
        ("ce_id", envelope.event_id.encode()),
        ("ce_type", b"clinical.note.NoteWritten.v3"),
        ("ce_source", SOURCE.encode()),
        ("ce_subject", envelope.aggregate_id.encode()),
        ("ce_time", b"2025-03-04T08:15:30.123456Z"),
        ("content-type", b"application/protobuf"),
        ("traceparent", TRACEPARENT.encode()),
        ("tracestate", b"vendor=1"),
    ]


def test_kafka_headers_leave_out_an_empty_trace() -> None:
    names = [name for name, _ in cloudevents_headers(an_envelope(trace_context={}))]

    assert "traceparent" not in names
    assert "tracestate" not in names
