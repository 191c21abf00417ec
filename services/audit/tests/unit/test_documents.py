"""Read-model documents: the change's clear metadata without its payload, in trail order."""

import uuid
from datetime import UTC, datetime

import pytest
from clinical_testing.security import patient_envelope

from audit.adapters.documents import (
    access_document,
    access_record_from,
    change_from,
    history_document,
    position_of,
)
from audit.domain.queries import Position
from clinical.audit.v1 import access_pb2
from clinical.events.v1.payload_encryption_pb2 import ENCRYPTION_ALGORITHM_AES_256_GCM

pytestmark = pytest.mark.unit

PATIENT, ORDER = str(uuid.uuid4()), str(uuid.uuid4())


def test_a_change_keeps_its_metadata_and_drops_its_payload() -> None:
    envelope = patient_envelope(PATIENT, ORDER, 2, note="Jane Q. Doe")
    envelope.recorded_at.FromNanoseconds(1_700_000_000_123_456_789)
    envelope.payload_encryption.algorithm = ENCRYPTION_ALGORITHM_AES_256_GCM
    envelope.hash = b"\x01" * 32

    document = history_document(envelope)
    change = change_from(document)

    assert b"Jane" not in document["envelope"]
    assert position_of(document) == Position(1_700_000_000_123_456_789, 2, envelope.event_id)
    assert document["recorded_at"] == datetime.fromtimestamp(1_700_000_000.123456, UTC)
    assert (change.event_id, change.patient_id, change.aggregate_version) == (
        envelope.event_id, PATIENT, 2
    )  # fmt: skip
    assert change.payload_encrypted
    assert change.hash == b"\x01" * 32
    assert change.recorded_at == envelope.recorded_at


def test_an_access_record_is_kept_whole_and_positioned_by_when_it_happened() -> None:
    record = access_pb2.AccessRecord(record_id=str(uuid.uuid4()), patient_id=PATIENT,
                                     outcome=access_pb2.ACCESS_OUTCOME_DENIED)  # fmt: skip
    record.occurred_at.FromNanoseconds(42)
    record.actor.subject = "dr-house"

    document = access_document(record)

    assert access_record_from(document) == record
    assert position_of(document) == Position(42, 0, record.record_id)
    assert (document["outcome"], document["actor_subject"]) == ("DENIED", "dr-house")
