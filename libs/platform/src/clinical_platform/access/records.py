"""Access records: what was read (or refused), by whom, why and from where.

Pure: no I/O. `access_record` builds the `clinical.audit.v1.AccessRecord` that goes on the access
topic, keeping only values that cannot be patient data: ids that are canonical UUIDs, the
service's own words for types, categories and reasons, and the caller's network provenance.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from clinical.audit.v1 import access_pb2
from clinical.events.v1 import provenance_pb2
from clinical_platform.eventlog.context import Actor

ACCESS_TOPIC = "clinical.audit.access.v1"
_MAX_USER_AGENT_CHARS = 512


class AccessAction(StrEnum):
    """What an access did, or attempted when it was refused (``AccessAction`` in the proto)."""

    READ = "READ"
    SEARCH = "SEARCH"
    EXPORT = "EXPORT"
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


class AccessOutcome(StrEnum):
    SUCCESS = "SUCCESS"
    DENIED = "DENIED"
    FAILURE = "FAILURE"


@dataclass(frozen=True)
class AccessTarget:
    """The data an access was about: a patient, a kind of record, the records' ids."""

    patient_id: str = ""
    record_type: str = ""
    record_ids: Sequence[str] = ()
    category: str = ""
    action: AccessAction = AccessAction.READ
    operation: str = ""


@dataclass(frozen=True)
class RequestOrigin:
    """Where a request came from and why it was made (`access.origin.request_origin`)."""

    source_ip: str = ""
    user_agent: str = ""
    purpose_of_use: str = "TREAT"
    request_id: str = ""
    trace_context: Mapping[str, str] = field(default_factory=dict)


def access_record(
    *,
    actor: Actor,
    target: AccessTarget,
    origin: RequestOrigin,
    outcome: AccessOutcome,
    source: str,
    reason: str = "",
    break_glass_reason: str = "",
    at: datetime | None = None,
) -> access_pb2.AccessRecord:
    """The access record of one served or refused request, with a fresh ``record_id``.

    A ``break_glass_reason`` flags the record as a break-glass read and keeps the reason, the
    one value written by the caller (capped by the request guard): its review needs it.

    A patient or record id that is not a canonical UUID is left out rather than recorded: on a
    refused request it is whatever the client typed, which may be patient data.
    """
    record = access_pb2.AccessRecord(
        record_id=str(uuid.uuid4()),
        actor=provenance_pb2.Actor(
            subject=actor.subject,
            roles=actor.roles,
            client_id=actor.client_id,
            on_behalf_of=actor.on_behalf_of,
        ),
        patient_id=target.patient_id if is_uuid(target.patient_id) else "",
        record_type=target.record_type,
        accessed_record_ids=[r for r in target.record_ids if is_uuid(r)],
        data_category=target.category,
        action=access_pb2.AccessAction.Value(f"ACCESS_ACTION_{target.action.value}"),
        purpose_of_use=purpose_of_use(origin.purpose_of_use),
        source_ip=origin.source_ip,
        user_agent=origin.user_agent[:_MAX_USER_AGENT_CHARS],
        outcome=access_pb2.AccessOutcome.Value(f"ACCESS_OUTCOME_{outcome.value}"),
        request_id=origin.request_id if is_printable_id(origin.request_id) else "",
        trace_context=provenance_pb2.TraceContext(
            traceparent=origin.trace_context.get("traceparent", ""),
            tracestate=origin.trace_context.get("tracestate", ""),
        ),
        source=source,
        operation=target.operation,
        reason=reason,
        break_glass=bool(break_glass_reason),
        break_glass_reason=break_glass_reason,
    )
    record.occurred_at.FromDatetime(at or datetime.now(UTC))
    return record


def record_key(record: access_pb2.AccessRecord) -> bytes:
    """The Kafka key: the patient, so a patient's records stay ordered; else the actor."""
    return (record.patient_id or record.actor.subject).encode()


def purpose_of_use(code: str) -> provenance_pb2.PurposeOfUse.ValueType:
    """The HL7 PurposeOfUse code as the proto enum; UNSPECIFIED (a visible defect) if unknown.

    An access is recorded whatever the caller declared: refusing to audit is never an option.
    """
    # The proto's invariant: each value is PURPOSE_OF_USE_<HL7 code>.
    try:
        return provenance_pb2.PurposeOfUse.Value(f"PURPOSE_OF_USE_{code}")
    except ValueError:
        return provenance_pb2.PURPOSE_OF_USE_UNSPECIFIED


def is_uuid(text: str) -> bool:
    """True for a lowercase, hyphenated UUID: the only id form the platform issues."""
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def is_printable_id(text: str) -> bool:
    return 0 < len(text) <= 128 and text.isprintable()
