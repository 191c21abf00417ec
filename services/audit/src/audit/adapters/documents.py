"""The read model's documents: one per recorded change, one per access record.

Both keep the original message (a change: its envelope with the payload removed) so the API
returns exactly what was recorded, plus the fields queries filter and sort on:

    _id         event_id / record_id: a redelivered message is the same document
    at, seq     position in the trail (`audit.domain.queries.Position`): recorded_at in
                nanoseconds (integers keep the order that milliseconds would lose) and the
                aggregate version (0 for access records)
    patient_id  the patient the change or access was about
    aggregate_id, aggregate_type
                the changed aggregate and its type (History of one, or of every one of a type)
    break_glass an access served by break-glass only (AccessRecord.break_glass); access records
                projected before it was kept lack it, until the read model is rebuilt
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from audit.domain.queries import Position
from clinical.audit.v1.access_pb2 import AccessOutcome, AccessRecord
from clinical.audit.v1.audit_pb2 import Change
from clinical.events.v1.envelope_pb2 import Envelope
from clinical.events.v1.payload_encryption_pb2 import ENCRYPTION_ALGORITHM_AES_256_GCM
from clinical_platform.clients.mongo import MongoDocument

HISTORY_COLLECTION = "history"
ACCESS_COLLECTION = "access"


def history_document(envelope: Envelope) -> MongoDocument:
    """The change an envelope records, without its payload (patient data, usually encrypted)."""
    metadata = Envelope()
    metadata.CopyFrom(envelope)
    metadata.ClearField("payload")
    return {
        "_id": envelope.event_id,
        "at": envelope.recorded_at.ToNanoseconds(),
        "seq": envelope.aggregate_version,
        "patient_id": envelope.patient_id,
        "aggregate_id": envelope.aggregate_id,
        "aggregate_type": envelope.aggregate_type,
        "event_type": envelope.event_type,
        "actor_subject": envelope.actor.subject,
        "recorded_at": envelope.recorded_at.ToDatetime(UTC),
        "envelope": metadata.SerializeToString(),
    }


def access_document(record: AccessRecord) -> MongoDocument:
    return {
        "_id": record.record_id,
        "at": record.occurred_at.ToNanoseconds(),
        "seq": 0,
        "patient_id": record.patient_id,
        "actor_subject": record.actor.subject,
        "break_glass": record.break_glass,
        "outcome": AccessOutcome.Name(record.outcome).removeprefix("ACCESS_OUTCOME_"),
        "occurred_at": record.occurred_at.ToDatetime(UTC),
        "record": record.SerializeToString(),
    }


def position_of(document: MongoDocument) -> Position:
    return Position(int(document["at"]), int(document["seq"]), str(document["_id"]))


def change_from(document: MongoDocument) -> Change:
    envelope = Envelope.FromString(bytes(document["envelope"]))
    return change_of(envelope)


def change_of(envelope: Envelope) -> Change:
    """An envelope's clear fields as a `Change` (see clinical.events.v1.Envelope)."""
    change = Change(
        event_id=envelope.event_id,
        event_type=envelope.event_type,
        schema_version=envelope.schema_version,
        source=envelope.source,
        aggregate_type=envelope.aggregate_type,
        aggregate_id=envelope.aggregate_id,
        aggregate_version=envelope.aggregate_version,
        patient_id=envelope.patient_id,
        purpose_of_use=envelope.purpose_of_use,
        source_ip=envelope.source_ip,
        user_agent=envelope.user_agent,
        request_id=envelope.request_id,
        correlation_id=envelope.correlation_id,
        causation_id=envelope.causation_id,
        payload_type=envelope.payload_type,
        payload_encrypted=envelope.payload_encryption.algorithm == ENCRYPTION_ALGORITHM_AES_256_GCM,
        hash=envelope.hash,
        prev_hash=envelope.prev_hash,
    )
    change.occurred_at.CopyFrom(envelope.occurred_at)
    change.recorded_at.CopyFrom(envelope.recorded_at)
    change.actor.CopyFrom(envelope.actor)
    change.trace_context.CopyFrom(envelope.trace_context)
    return change


def access_record_from(document: MongoDocument) -> AccessRecord:
    return AccessRecord.FromString(bytes(document["record"]))


def trail_item_from(document: dict[str, Any]) -> Change | AccessRecord:
    """Either kind of document, as its message."""
    return change_from(document) if "envelope" in document else access_record_from(document)
