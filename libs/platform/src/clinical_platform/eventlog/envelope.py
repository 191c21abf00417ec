"""The Envelope around every recorded event: building it, checking it, and its Kafka headers.

On Kafka, the record key is the aggregate id as UTF-8 bytes, so one aggregate's events stay in
order in one partition; the value is the serialized Envelope; the headers are
`cloudevents_headers`, which copy routing fields and never payload content.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import trace

from clinical.events.v1 import envelope_pb2, payload_encryption_pb2, provenance_pb2
from clinical_platform.eventlog.codec import DomainEvent, EventCatalog
from clinical_platform.eventlog.context import CommandContext
from clinical_platform.eventlog.errors import EventRejectedError
from clinical_platform.telemetry import w3c_trace_context
from clinical_platform.validation import FieldViolation

_EVENT_TYPE = re.compile(r"^[A-Z][A-Za-z0-9]{1,63}$")
_AGGREGATE_TYPE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_TRACE_HEADERS = ("traceparent", "tracestate")
_MAX_REQUEST_ID_CHARS = 128
_MAX_USER_AGENT_CHARS = 512
# The canonical form only: the id is also the Kafka key, and "ABC…" and "abc…" hash apart.
_CANONICAL_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def build_envelope(
    *,
    event: DomainEvent,
    catalog: EventCatalog[Any],
    context: CommandContext,
    source: str,
) -> envelope_pb2.Envelope:
    """Wrap a new domain event with its provenance; the writer stamps recorded_at on append.

    Raises `EventRejectedError` for a purpose of use that is not an HL7 code the proto knows.
    """
    event_type = catalog.event_type(event)
    trace = context.trace_context or current_trace_context()
    envelope = envelope_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type=event_type,
        schema_version=catalog.schema_version,
        source=source,
        aggregate_type=catalog.aggregate_type,
        aggregate_id=str(event.originator_id),
        aggregate_version=event.originator_version,
        actor=provenance_pb2.Actor(
            subject=context.actor.subject,
            roles=context.actor.roles,
            client_id=context.actor.client_id,
            on_behalf_of=context.actor.on_behalf_of,
        ),
        purpose_of_use=_purpose_of_use(context.purpose_of_use),
        correlation_id=context.correlation_id or context.request_id,
        # A command's events are caused by the request itself unless the caller names a cause.
        causation_id=context.causation_id or context.request_id,
        request_id=context.request_id,
        trace_context=provenance_pb2.TraceContext(
            traceparent=trace.get("traceparent", ""), tracestate=trace.get("tracestate", "")
        ),
        source_ip=context.source_ip,
        user_agent=context.user_agent,
        payload_type=catalog.payload_type(event_type),
        payload=catalog.to_payload(event).SerializeToString(),
        payload_encryption=payload_encryption_pb2.PayloadEncryption(
            algorithm=payload_encryption_pb2.ENCRYPTION_ALGORITHM_NONE
        ),
    )
    set_timestamp(envelope.occurred_at, event.timestamp)
    return envelope


def set_timestamp(timestamp: Timestamp, at: datetime) -> None:
    """``timestamp.FromDatetime(at)`` for an aware datetime, in a fraction of its time (it runs
    for every event on the append path)."""
    if at.tzinfo is None:
        timestamp.FromDatetime(at)
        return
    since_epoch = at - _EPOCH
    timestamp.seconds = since_epoch.days * 86_400 + since_epoch.seconds
    timestamp.nanos = since_epoch.microseconds * 1_000


def current_trace_context() -> dict[str, str]:
    """W3C ``traceparent``/``tracestate`` of the current span; empty when nothing is traced."""
    return w3c_trace_context(trace.get_current_span().get_span_context())


def validate_envelope(envelope: envelope_pb2.Envelope, *, max_envelope_bytes: int) -> None:
    """Raise `EventRejectedError` listing every problem, by field path, never by value.

    Values are left out of the descriptions because they may hold patient data.
    """
    checks = [
        ("event_id", _is_uuid(envelope.event_id), "must be a lowercase hyphenated UUID"),
        (
            "aggregate_type",
            bool(_AGGREGATE_TYPE.match(envelope.aggregate_type)),
            "must be an identifier of 1 to 64 characters",
        ),
        ("aggregate_id", _is_uuid(envelope.aggregate_id), "must be a lowercase hyphenated UUID"),
        ("aggregate_version", envelope.aggregate_version >= 1, "must be at least 1"),
        (
            "event_type",
            bool(_EVENT_TYPE.match(envelope.event_type)),
            "must be PascalCase, 2 to 64 letters and digits",
        ),
        ("schema_version", envelope.schema_version >= 1, "must be at least 1"),
        ("occurred_at", envelope.HasField("occurred_at"), "must be set"),
        ("actor.subject", bool(envelope.actor.subject), "must not be empty"),
        (
            "purpose_of_use",
            envelope.purpose_of_use != provenance_pb2.PURPOSE_OF_USE_UNSPECIFIED,
            "must not be UNSPECIFIED",
        ),
        (
            "request_id",
            0 < len(envelope.request_id) <= _MAX_REQUEST_ID_CHARS
            and envelope.request_id.isprintable(),
            f"must be 1 to {_MAX_REQUEST_ID_CHARS} printable characters",
        ),
        ("source_ip", _is_ip_or_empty(envelope.source_ip), "must be an IPv4 or IPv6 address"),
        (
            "user_agent",
            len(envelope.user_agent) <= _MAX_USER_AGENT_CHARS,
            f"must be at most {_MAX_USER_AGENT_CHARS} characters, was {len(envelope.user_agent)}",
        ),
        ("payload_type", bool(envelope.payload_type), "must not be empty"),
    ]
    violations = [FieldViolation(name, description) for name, ok, description in checks if not ok]
    size = envelope.ByteSize()
    if size > max_envelope_bytes:
        violations.append(
            FieldViolation(
                "envelope", f"is {size} bytes serialized, over the {max_envelope_bytes}-byte limit"
            )
        )
    if violations:
        raise EventRejectedError(violations)


def cloudevents_headers(envelope: envelope_pb2.Envelope) -> list[tuple[str, bytes]]:
    """Kafka headers in the CloudEvents Kafka binding (binary mode), UTF-8 encoded.

    ``ce_type`` is ``clinical.<aggregate type, lower case>.<event type>.v<schema version>``, e.g.
    ``clinical.order.OrderSigned.v1``: an event type is only unique within its aggregate type,
    and the schema version tells a consumer whether it can read the payload before decoding it.
    """
    headers = [
        ("ce_specversion", "1.0"),
        ("ce_id", envelope.event_id),
        ("ce_type", _ce_type(envelope)),
        ("ce_source", envelope.source),
        ("ce_subject", envelope.aggregate_id),
        ("ce_time", envelope.occurred_at.ToJsonString()),
        ("content-type", "application/protobuf"),
    ]
    headers += [
        (name, getattr(envelope.trace_context, name))
        for name in _TRACE_HEADERS
        if getattr(envelope.trace_context, name)
    ]
    return [(name, value.encode()) for name, value in headers]


def _ce_type(envelope: envelope_pb2.Envelope) -> str:
    aggregate_type = envelope.aggregate_type.lower()
    return f"clinical.{aggregate_type}.{envelope.event_type}.v{envelope.schema_version}"


def _purpose_of_use(code: str) -> provenance_pb2.PurposeOfUse.ValueType:
    # The proto's invariant: each value is PURPOSE_OF_USE_<HL7 code>, UNSPECIFIED excepted.
    try:
        value = provenance_pb2.PurposeOfUse.Value(f"PURPOSE_OF_USE_{code}")
    except ValueError:
        value = provenance_pb2.PURPOSE_OF_USE_UNSPECIFIED
    if value == provenance_pb2.PURPOSE_OF_USE_UNSPECIFIED:
        violation = FieldViolation("purpose_of_use", "is not an HL7 PurposeOfUse code")
        raise EventRejectedError([violation])
    return value


def _is_uuid(text: str) -> bool:
    return _CANONICAL_UUID.match(text) is not None


# A client's address repeats from command to command; parsing it costs more than a lookup.
@lru_cache(maxsize=4096)
def _is_ip_or_empty(text: str) -> bool:
    if not text:
        return True
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
