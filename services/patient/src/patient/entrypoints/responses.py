"""Answers of clinical.patient.v1: records, golden records and match candidates as messages.

Demographics, translated both ways, stay in `translate`."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from clinical.patient.v1 import patient_pb2 as pb
from patient.domain.assessment import MatchCandidate, MatchGrade
from patient.domain.golden_record import GoldenRecord
from patient.entrypoints.translate import demographics_to
from patient.ports import PatientView

_GRADE_TO_PROTO = {
    MatchGrade.MATCH: pb.MATCH_GRADE_MATCH,
    MatchGrade.POSSIBLE_MATCH: pb.MATCH_GRADE_POSSIBLE_MATCH,
    MatchGrade.NO_MATCH: pb.MATCH_GRADE_NO_MATCH,
}


def grade_to(grade: MatchGrade) -> pb.MatchGrade.ValueType:
    return _GRADE_TO_PROTO[grade]


def candidate_to(candidate: MatchCandidate) -> pb.MatchCandidate:
    return pb.MatchCandidate(
        patient_id=str(candidate.patient_id),
        score=candidate.score,
        grade=grade_to(candidate.grade),
        rule=candidate.rule,
        fields=[
            pb.FieldComparison(field=f.field, level=f.level, weight=f.weight)
            for f in candidate.fields
        ],
    )


def patient_to(view: PatientView) -> pb.Patient:
    return pb.Patient(
        patient_id=view.patient_id,
        version=view.version,
        demographics=demographics_to(view.demographics),
        forgotten=view.forgotten,
        linked_patient_ids=view.linked_patient_ids,
        recorded_at=_timestamp(view.recorded_at),
    )


def _timestamp(at: datetime | None) -> Timestamp | None:
    if at is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(at if at.tzinfo else at.replace(tzinfo=UTC))
    return stamp


def golden_record_to(golden: GoldenRecord) -> pb.GoldenRecord:
    return pb.GoldenRecord(
        golden_record_id=golden.golden_record_id,
        member_patient_ids=golden.member_patient_ids,
        demographics=demographics_to(golden.demographics),
        sources=[
            pb.FieldSource(field=field, patient_ids=ids) for field, ids in golden.sources.items()
        ],
    )
