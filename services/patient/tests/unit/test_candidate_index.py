"""The matcher's in-memory blocking index: versions, forgetting, and what blocking returns."""

from __future__ import annotations

from dataclasses import replace
from uuid import uuid4

import pytest

from patient.domain.demographics import PatientAddress, PatientDemographics, PatientName
from patient.matching.blocking import blocking_keys
from patient.matching.candidate_index import CandidateIndex
from patient.matching.record import match_record

pytestmark = pytest.mark.unit


def _keys(demographics: PatientDemographics) -> list[str]:
    return blocking_keys(match_record(demographics))


def _stranger() -> PatientDemographics:
    return PatientDemographics(
        name=PatientName(given=("Zebedee",), family="Quartermaine"),
        birth_date="1990-11-30",
        address=PatientAddress(lines=("2 Elm Road",), city="Perth", postal_code="6000"),
    )


def test_a_record_sharing_a_key_is_a_candidate_with_its_normalised_features(
    margaret: PatientDemographics,
) -> None:
    index = CandidateIndex()
    first, other = uuid4(), uuid4()
    index.record(first, 1, margaret)
    index.record(other, 1, _stranger())

    found = index.lookup(_keys(replace(margaret, phone="")))

    assert [c.patient_id for c in found] == [first]
    assert found[0].record == match_record(margaret)


def test_the_record_itself_is_excluded(margaret: PatientDemographics) -> None:
    index = CandidateIndex()
    patient_id = uuid4()
    index.record(patient_id, 1, margaret)
    assert index.lookup(_keys(margaret), exclude=patient_id) == []


def test_an_update_moves_the_record_and_an_older_version_is_ignored(
    margaret: PatientDemographics,
) -> None:
    index = CandidateIndex()
    patient_id = uuid4()
    index.record(patient_id, 1, margaret)
    index.record(patient_id, 3, _stranger())
    index.record(patient_id, 2, margaret)  # a replay of an older event arriving late

    assert index.lookup(_keys(margaret)) == []
    assert [c.patient_id for c in index.lookup(_keys(_stranger()))] == [patient_id]
    assert index.version_of(patient_id) == 3


def test_a_forgotten_record_leaves_and_a_replay_does_not_bring_it_back(
    margaret: PatientDemographics,
) -> None:
    index = CandidateIndex()
    patient_id = uuid4()
    index.record(patient_id, 1, margaret)
    index.drop(patient_id)
    index.record(patient_id, 1, margaret)

    assert index.lookup(_keys(margaret)) == []
    assert len(index) == 0


def test_candidates_are_capped(margaret: PatientDemographics) -> None:
    index = CandidateIndex(max_candidates=3)
    for _ in range(5):
        index.record(uuid4(), 1, margaret)
    assert len(index.lookup(_keys(margaret))) == 3
