"""Care relationships and break-glass: the decisions, the declared reason and the read model."""

import pytest

from clinical.events.v1 import orders_events_pb2 as order_events
from clinical.events.v1 import patient_events_pb2 as patient_events
from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.access.records import (
    AccessOutcome,
    AccessTarget,
    RequestOrigin,
    access_record,
)
from clinical_platform.authorization import PatientRecordReaders, ReadGrant
from clinical_platform.break_glass import BreakGlass, break_glass_violation, declared_break_glass
from clinical_platform.care.reads import Access
from clinical_platform.care.relationships import (
    CARE_RELATIONSHIPS,
    CareRelationshipsProjection,
    relationship_id,
)
from clinical_platform.eventlog.context import Actor
from clinical_platform.principals import Principal, Role
from clinical_platform.projections import VersionedChange

pytestmark = pytest.mark.unit

PATIENT = "0c6b1f7e-3f3a-4c55-9f1e-2b8f5d1c9a10"
OTHER = "9d2e4a61-7b0c-4e8f-a3d5-6c1b2f0e4d77"
READERS = PatientRecordReaders(staff=(Role.LAB,), by_relationship=(Role.CLINICIAN,), records="x")
CLINICIAN = Principal("dr-who", frozenset({Role.CLINICIAN}))


def test_a_clinician_reads_a_patient_in_their_care_and_others_only_by_break_glass() -> None:
    related = READERS.read_patient(CLINICIAN, PATIENT, related=True, break_glass=False)
    glass = READERS.read_patient(CLINICIAN, PATIENT, related=False, break_glass=True)
    outside = READERS.read_patient(CLINICIAN, PATIENT, related=False, break_glass=False)

    assert related.grant is ReadGrant.RELATIONSHIP
    assert glass.grant is ReadGrant.BREAK_GLASS
    assert outside.grant is None
    assert outside.refusal is not None
    assert "break-glass" in outside.refusal


def test_a_clinician_hears_the_same_refusal_for_an_unknown_record_as_for_one_outside_care() -> None:
    outside = READERS.read_patient(CLINICIAN, PATIENT, related=False, break_glass=False)

    assert READERS.refusal_to_learn_absence(CLINICIAN) == outside.refusal
    assert READERS.refusal_to_learn_absence(Principal("lab", frozenset({Role.LAB}))) is None


def test_staff_who_read_every_patient_need_no_relationship_and_patients_only_their_own() -> None:
    lab = Principal("lab", frozenset({Role.LAB, Role.CLINICIAN}))
    patient = Principal("p", frozenset({Role.PATIENT}), patient_id=PATIENT)

    assert not READERS.needs_relationship(lab)
    assert (
        READERS.read_patient(lab, OTHER, related=False, break_glass=False).grant is ReadGrant.ROLE
    )
    assert READERS.read_patient(patient, PATIENT, related=False, break_glass=True).grant
    assert READERS.read_patient(patient, OTHER, related=False, break_glass=True).refusal
    auditor = Principal("a", frozenset({Role.AUDITOR}))
    assert READERS.refusal_to_read(auditor) == "this role does not read x"


def test_a_clinician_listing_across_patients_needs_break_glass() -> None:
    assert READERS.read_patient(CLINICIAN, "", related=False, break_glass=False).refusal
    assert READERS.read_patient(CLINICIAN, "", related=False, break_glass=True).grant


@pytest.mark.parametrize(
    ("metadata", "declared"),
    [
        ([("x-purpose-of-use", "ETREAT"), ("x-break-glass-reason", " arrest ")], "arrest"),
        ([("x-purpose-of-use", "ETREAT")], None),
        ([("x-purpose-of-use", "TREAT"), ("x-break-glass-reason", "arrest")], None),
    ],
)
def test_a_break_glass_is_declared_by_etreat_and_a_reason(
    metadata: list[tuple[str, str]], declared: str | None
) -> None:
    found = declared_break_glass(metadata)

    assert (found.reason if found else None) == declared


def test_a_reason_without_etreat_or_over_its_cap_is_a_field_violation() -> None:
    assert break_glass_violation([("x-break-glass-reason", "arrest")]) is not None
    too_long = [("x-purpose-of-use", "ETREAT"), ("x-break-glass-reason", "r" * 501)]
    assert break_glass_violation(too_long) is not None
    assert break_glass_violation([("x-purpose-of-use", "ETREAT")]) is None


def test_only_reads_outside_care_carry_the_break_glass_reason() -> None:
    access = Access(related=frozenset({PATIENT}), break_glass=BreakGlass("arrest"))

    assert access.reason_for(PATIENT) == ""
    assert access.reason_for(OTHER) == "arrest"
    assert Access(unrestricted=True, break_glass=BreakGlass("arrest")).reason_for(OTHER) == ""


def test_a_break_glass_access_record_is_flagged_with_its_reason() -> None:
    record = access_record(
        actor=Actor(subject="dr-who"), target=AccessTarget(patient_id=PATIENT),
        origin=RequestOrigin(purpose_of_use="ETREAT"), outcome=AccessOutcome.SUCCESS,
        source="//clinical/orders", break_glass_reason="arrest",
    )  # fmt: skip
    plain = access_record(
        actor=Actor(subject="dr-who"), target=AccessTarget(patient_id=PATIENT),
        origin=RequestOrigin(), outcome=AccessOutcome.SUCCESS, source="//clinical/orders",
    )  # fmt: skip

    assert (record.break_glass, record.break_glass_reason) == (True, "arrest")
    assert (plain.break_glass, plain.break_glass_reason) == (False, "")


def _envelope(event_type: str, payload: bytes, *, aggregate_id: str, version: int) -> Envelope:
    return Envelope(
        event_type=event_type, payload=payload, aggregate_id=aggregate_id,
        aggregate_version=version, patient_id=PATIENT,
    )  # fmt: skip


def _only_change(projection: CareRelationshipsProjection, envelope: Envelope) -> VersionedChange:
    changes = projection.changes(envelope)
    assert changes is not None
    [change] = changes
    return change


def test_the_signer_of_an_order_becomes_related_to_its_patient() -> None:
    projection = CareRelationshipsProjection(name="t", patient_topic="p", orders_topic="o")
    signed = order_events.OrderSigned(
        signature=order_events.OrderSignature(signer="dr-sign", mfa=True)
    )

    # OrderSigned names no patient: the envelope does (every order event carries it).
    signing = _only_change(
        projection,
        _envelope("OrderSigned", signed.SerializeToString(), aggregate_id=OTHER, version=2),
    )

    assert signing.document_id == relationship_id(PATIENT, "dr-sign", "signing")
    assert signing.fields == {
        "patient_id": PATIENT, "subject": "dr-sign", "basis": "signing", "active": True,
    }  # fmt: skip
    assert "OrderSigned" in projection.payload_event_types


def test_care_team_changes_and_orderers_become_relationship_documents() -> None:
    projection = CareRelationshipsProjection(name="t", patient_topic="p", orders_topic="o")
    assigned = patient_events.CareTeamMemberAssigned(member_subject="dr-who")
    ended = patient_events.CareTeamMemberEnded(member_subject="dr-who", reason="discharged")
    placed = order_events.OrderPlaced(patient_id=PATIENT, orderer="dr-no")

    joined = _only_change(
        projection,
        _envelope(
            "CareTeamMemberAssigned", assigned.SerializeToString(), aggregate_id=PATIENT, version=2
        ),
    )
    left = _only_change(
        projection,
        _envelope(
            "CareTeamMemberEnded", ended.SerializeToString(), aggregate_id=PATIENT, version=3
        ),
    )
    ordering = _only_change(
        projection,
        _envelope("OrderPlaced", placed.SerializeToString(), aggregate_id=OTHER, version=1),
    )
    assert joined
    assert left
    assert ordering
    registered = _envelope("PatientRegistered", b"", aggregate_id=PATIENT, version=1)

    assert (joined.collection, joined.document_id, joined.version) == (
        CARE_RELATIONSHIPS, relationship_id(PATIENT, "dr-who", "care-team"), 2,
    )  # fmt: skip
    assert joined.fields["active"] is True
    assert left.document_id == joined.document_id
    assert left.fields["active"] is False
    assert ordering.document_id == relationship_id(PATIENT, "dr-no", "ordering")
    assert ordering.fields["active"] is True
    assert projection.changes(registered) == []
    # Forgetting reads (it ends every relationship of the patient): not a batched change.
    assert (
        projection.changes(_envelope("PatientForgotten", b"", aggregate_id=PATIENT, version=4))
        is None
    )
