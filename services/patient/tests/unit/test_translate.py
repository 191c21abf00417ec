"""Requests into commands and queries: the kernel's rules, every problem named by field."""

import uuid

import pytest

from clinical.patient.v1 import patient_pb2 as pb
from clinical_platform.validation import InvalidRequest
from patient.entrypoints.translate import (
    forget_from,
    match_subject_from,
    pair_from,
    patient_id_from,
    registration_from,
    search_from,
)

pytestmark = pytest.mark.unit

PATIENT = str(uuid.uuid4())


def _fields(problem: pytest.ExceptionInfo[InvalidRequest]) -> list[str]:
    return [violation.field for violation in problem.value.violations]


def test_patient_ids_must_be_canonical_uuids() -> None:
    assert str(patient_id_from(PATIENT)) == PATIENT
    for text in (PATIENT.upper(), PATIENT.replace("-", ""), f"{{{PATIENT}}}", "42"):
        with pytest.raises(InvalidRequest) as problem:
            patient_id_from(text)
        assert _fields(problem) == ["patient_id"]


def test_request_ids_are_one_to_128_printable_characters() -> None:
    for request_id in ("", "x" * 129, "line\nbreak"):
        with pytest.raises(InvalidRequest) as problem:
            forget_from(pb.ForgetPatientRequest(request_id=request_id, patient_id=PATIENT))
        assert _fields(problem) == ["request_id"]


def test_every_problem_of_a_request_is_listed_at_once() -> None:
    request = pb.LinkPatientsRequest(patient_id="Jane Doe", other_patient_id=PATIENT.upper())

    with pytest.raises(InvalidRequest) as problem:
        pair_from(request)

    assert _fields(problem) == ["request_id", "patient_id", "other_patient_id"]
    assert "Jane" not in str(problem.value)


def test_an_unknown_sex_code_is_refused_with_the_request_id() -> None:
    demographics = pb.Demographics(name=pb.HumanName(family="Doe"), sex=99)  # type: ignore[arg-type]

    with pytest.raises(InvalidRequest) as problem:
        registration_from(pb.RegisterPatientRequest(demographics=demographics))

    assert _fields(problem) == ["request_id", "demographics.sex"]


def test_a_search_needs_a_criterion_and_a_page_within_the_maximum() -> None:
    with pytest.raises(InvalidRequest) as problem:
        search_from(pb.SearchPatientsRequest(page_size=201, written_patient_id="x"))

    assert _fields(problem) == ["page_size", "criteria", "written_patient_id"]
    query, after = search_from(pb.SearchPatientsRequest(family_name="Doe"))
    assert (query.limit, after) == (50, None)


def test_matching_needs_demographics_or_a_patient_id() -> None:
    with pytest.raises(InvalidRequest) as problem:
        match_subject_from(pb.FindMatchesRequest())

    assert _fields(problem) == ["subject"]
    assert str(match_subject_from(pb.FindMatchesRequest(patient_id=PATIENT))) == PATIENT
