"""The matcher: deterministic rules, Fellegi-Sunter scores, grades and their explanation."""

import math
from dataclasses import replace
from uuid import uuid4

import pytest

from patient.domain.assessment import MatchGrade
from patient.domain.demographics import (
    PatientAddress,
    PatientDemographics,
    PatientIdentifier,
    PatientName,
)
from patient.matching.matcher import (
    HOUSEHOLD_ONLY,
    SAME_IDENTIFIER,
    Candidate,
    Matcher,
    Thresholds,
    compare_records,
)
from patient.matching.model import DEFAULT_MODEL, NAME_SWAPPED
from patient.matching.record import match_record

pytestmark = pytest.mark.unit


def _grade(new: PatientDemographics, existing: PatientDemographics) -> tuple[MatchGrade, str]:
    candidate = Matcher().rank(new, [Candidate(uuid4(), existing)])[0]
    return candidate.grade, candidate.rule


def _without_ids(demographics: PatientDemographics) -> PatientDemographics:
    return replace(demographics, identifiers=(), phone="", email="")


def test_every_weight_is_log2_of_m_over_u() -> None:
    for model in DEFAULT_MODEL.values():
        for level in model.levels.values():
            assert math.isclose(level.weight, math.log2(level.m / level.u))


def test_agreement_weighs_for_and_disagreement_against() -> None:
    for field, model in DEFAULT_MODEL.items():
        assert model.weight("exact") > 0, field
        assert model.weight("disagree") < 0, field


def test_the_same_identifier_in_the_same_system_is_a_match_whatever_the_rest(
    margaret: PatientDemographics,
) -> None:
    stranger = PatientDemographics(
        name=PatientName(given=("Ann",), family="Lee"), identifiers=margaret.identifiers
    )
    assert _grade(stranger, margaret) == (MatchGrade.MATCH, SAME_IDENTIFIER)


def test_a_different_value_in_the_same_identifier_system_weighs_against(
    margaret: PatientDemographics,
) -> None:
    other_mrn = replace(
        margaret, identifiers=(PatientIdentifier("urn:mrn:kedron-hospital", "K999999"),)
    )
    levels = compare_records(match_record(margaret), match_record(other_mrn))
    assert levels["identifier"] == "disagree"
    assert Matcher().score(levels)[0] < Matcher().score({**levels, "identifier": None})[0]


def test_a_duplicate_with_typos_nickname_and_swapped_date_is_a_match(
    margaret: PatientDemographics,
) -> None:
    retyped = replace(
        _without_ids(margaret),
        name=PatientName(given=("Peggy",), family="Thorntan"),
        birth_date="1961-12-04",
        address=replace(margaret.address, lines=("17 Wattle St",), postal_code="4013"),
    )
    assert _grade(retyped, _without_ids(margaret))[0] is MatchGrade.MATCH


def test_given_and_family_names_entered_the_wrong_way_round_still_agree(
    margaret: PatientDemographics,
) -> None:
    swapped = replace(margaret, name=PatientName(given=("Thornton",), family="Margaret"))
    levels = compare_records(match_record(swapped), match_record(margaret))
    assert levels["given_name"] == levels["family_name"] == NAME_SWAPPED


def test_an_unrelated_person_is_no_match(margaret: PatientDemographics) -> None:
    stranger = PatientDemographics(
        name=PatientName(given=("Lachlan",), family="Berry"),
        birth_date="1999-02-19",
        address=PatientAddress(lines=("69 Giblin Street",), city="Bittern", postal_code="4814"),
    )
    assert _grade(stranger, _without_ids(margaret))[0] is MatchGrade.NO_MATCH


def test_a_relative_at_the_same_address_is_reviewed_not_linked(
    margaret: PatientDemographics,
) -> None:
    daughter = replace(
        _without_ids(margaret), name=PatientName(given=("Chloe",), family="Thornton"),
        birth_date="1990-08-30",
    )  # fmt: skip
    assert _grade(daughter, _without_ids(margaret)) == (MatchGrade.POSSIBLE_MATCH, HOUSEHOLD_ONLY)


def test_scores_between_the_thresholds_are_possible_matches(
    margaret: PatientDemographics,
) -> None:
    sparse = PatientDemographics(name=margaret.name, birth_date=margaret.birth_date)
    candidate = Matcher().rank(sparse, [Candidate(uuid4(), _without_ids(margaret))])[0]
    strict = Matcher(thresholds=Thresholds(match=candidate.score + 1, review=candidate.score - 1))
    regraded = strict.rank(sparse, [Candidate(uuid4(), _without_ids(margaret))])[0]
    assert regraded.grade is MatchGrade.POSSIBLE_MATCH


def test_missing_fields_weigh_nothing_and_the_explanation_lists_every_field(
    margaret: PatientDemographics,
) -> None:
    sparse = PatientDemographics(name=margaret.name)
    candidate = Matcher().rank(sparse, [Candidate(uuid4(), margaret)])[0]
    weights = {f.field: (f.level, f.weight) for f in candidate.fields}
    assert set(weights) == set(DEFAULT_MODEL)
    assert weights["birth_date"] == ("missing", 0.0)
    assert math.isclose(candidate.score, sum(w for _, w in weights.values()), abs_tol=0.01)


def test_assessment_keeps_only_candidates_worth_recording_best_first(
    margaret: PatientDemographics,
) -> None:
    twin_record, stranger = uuid4(), uuid4()
    candidates = [
        Candidate(stranger, PatientDemographics(name=PatientName(given=("Ann",), family="Lee"))),
        Candidate(twin_record, _without_ids(margaret)),
    ]
    assessment = Matcher().assess(_without_ids(margaret), candidates)
    assert assessment.outcome is MatchGrade.MATCH
    assert [c.patient_id for c in assessment.candidates] == [twin_record]
    assert assessment.candidates_compared == 2


def test_no_candidates_is_no_match(margaret: PatientDemographics) -> None:
    assessment = Matcher().assess(margaret, [])
    assert assessment.outcome is MatchGrade.NO_MATCH
    assert assessment.candidates == ()
