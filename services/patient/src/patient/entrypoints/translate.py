"""Protobuf messages of clinical.patient.v1 to domain values and back."""

from __future__ import annotations

from uuid import UUID

from clinical.patient.v1 import patient_pb2 as pb
from clinical_platform.validation import FieldViolation
from patient.domain.assessment import MatchCandidate, MatchGrade
from patient.domain.demographics import (
    AdministrativeSex,
    PatientAddress,
    PatientDemographics,
    PatientIdentifier,
    PatientName,
)
from patient.domain.golden_record import GoldenRecord
from patient.views import PatientView

_SEX_TO_DOMAIN = {
    pb.ADMINISTRATIVE_SEX_UNSPECIFIED: AdministrativeSex.UNKNOWN,
    pb.ADMINISTRATIVE_SEX_UNKNOWN: AdministrativeSex.UNKNOWN,
    pb.ADMINISTRATIVE_SEX_MALE: AdministrativeSex.MALE,
    pb.ADMINISTRATIVE_SEX_FEMALE: AdministrativeSex.FEMALE,
    pb.ADMINISTRATIVE_SEX_OTHER: AdministrativeSex.OTHER,
}
_SEX_TO_PROTO = {
    AdministrativeSex.UNKNOWN: pb.ADMINISTRATIVE_SEX_UNKNOWN,
    AdministrativeSex.MALE: pb.ADMINISTRATIVE_SEX_MALE,
    AdministrativeSex.FEMALE: pb.ADMINISTRATIVE_SEX_FEMALE,
    AdministrativeSex.OTHER: pb.ADMINISTRATIVE_SEX_OTHER,
}
_GRADE_TO_PROTO = {
    MatchGrade.MATCH: pb.MATCH_GRADE_MATCH,
    MatchGrade.POSSIBLE_MATCH: pb.MATCH_GRADE_POSSIBLE_MATCH,
    MatchGrade.NO_MATCH: pb.MATCH_GRADE_NO_MATCH,
}


class InvalidRequest(Exception):  # noqa: N818 - carries violations, like EventRejectedError
    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = violations
        super().__init__("; ".join(v.field for v in violations))


def patient_id_from(value: str, field: str = "patient_id") -> UUID:
    try:
        parsed = UUID(value)
    except ValueError:
        raise InvalidRequest([FieldViolation(field, "must be a UUID")]) from None
    return parsed


def require_request_id(request_id: str) -> None:
    if not request_id:
        raise InvalidRequest([FieldViolation("request_id", "is required")])


def demographics_from(message: pb.Demographics) -> PatientDemographics:
    sex = _SEX_TO_DOMAIN.get(message.sex)
    if sex is None:
        raise InvalidRequest([FieldViolation("demographics.sex", "is not a known code")])
    return PatientDemographics(
        name=PatientName(
            tuple(message.name.given),
            message.name.family,
            tuple(message.name.prefix),
            tuple(message.name.suffix),
        ),
        birth_date=message.birth_date,
        sex=sex,
        address=PatientAddress(
            tuple(message.address.lines),
            message.address.city,
            message.address.district,
            message.address.postal_code,
            message.address.country,
        ),
        phone=message.phone,
        email=message.email,
        identifiers=tuple(PatientIdentifier(i.system, i.value) for i in message.identifiers),
    )


def demographics_to(demographics: PatientDemographics) -> pb.Demographics:
    name, address = demographics.name, demographics.address
    return pb.Demographics(
        name=pb.HumanName(
            given=name.given, family=name.family, prefix=name.prefix, suffix=name.suffix
        ),
        birth_date=demographics.birth_date,
        sex=_SEX_TO_PROTO[demographics.sex],
        address=pb.Address(
            lines=address.lines,
            city=address.city,
            district=address.district,
            postal_code=address.postal_code,
            country=address.country,
        ),
        phone=demographics.phone,
        email=demographics.email,
        identifiers=[
            pb.Identifier(system=i.system, value=i.value) for i in demographics.identifiers
        ],
    )


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
    )


def golden_record_to(golden: GoldenRecord) -> pb.GoldenRecord:
    return pb.GoldenRecord(
        golden_record_id=golden.golden_record_id,
        member_patient_ids=golden.member_patient_ids,
        demographics=demographics_to(golden.demographics),
        sources=[
            pb.FieldSource(field=field, patient_ids=ids) for field, ids in golden.sources.items()
        ],
    )
