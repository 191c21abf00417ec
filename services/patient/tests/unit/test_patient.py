"""The Patient aggregate's invariants, and its events' round trip through the catalog."""

from dataclasses import replace
from datetime import UTC, date, datetime
from uuid import UUID, uuid4

import pytest

from clinical_platform.eventlog.codec import replay
from patient.adapters.event_catalog import PATIENT_EVENTS
from patient.domain.assessment import LinkBasis, MatchAssessment, MatchGrade
from patient.domain.demographics import FORGOTTEN, PatientDemographics, PatientName
from patient.domain.errors import (
    CannotLinkToItself,
    InvalidDemographics,
    NotOnCareTeam,
    PatientForgotten,
    PatientsAlreadyLinked,
    PatientsNotLinked,
)
from patient.domain.patient import Patient, anchor_of

pytestmark = pytest.mark.unit

TODAY = date(2025, 6, 1)


def _anchor_pair() -> tuple[UUID, UUID]:
    return anchor_of(uuid4(), uuid4())


def _registered(demographics: PatientDemographics, patient_id: UUID | None = None) -> Patient:
    return Patient.register(patient_id or uuid4(), demographics, today=TODAY)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": PatientName()}, "demographics.name"),
        ({"birth_date": "1961-02-30"}, "demographics.birth_date"),
        ({"birth_date": "12/04/1961"}, "demographics.birth_date"),
        ({"birth_date": "2030-01-01"}, "demographics.birth_date"),
        ({"email": "not an address"}, "demographics.email"),
        ({"phone": "call me"}, "demographics.phone"),
        ({"name": PatientName(family="x" * 201)}, "demographics.name.family"),
    ],
)
def test_invalid_demographics_are_refused_naming_the_field(
    margaret: PatientDemographics, change: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidDemographics) as refused:
        _registered(replace(margaret, **change))  # type: ignore[arg-type]
    assert [v.field for v in refused.value.violations] == [field]


def test_an_identifier_system_may_appear_once(margaret: PatientDemographics) -> None:
    twice = replace(margaret, identifiers=margaret.identifiers * 2)
    with pytest.raises(InvalidDemographics):
        _registered(twice)


def test_refusals_never_quote_the_value(margaret: PatientDemographics) -> None:
    with pytest.raises(InvalidDemographics) as refused:
        _registered(replace(margaret, birth_date="1961-13-45"))
    assert "1961" not in str(refused.value)


def test_demographics_update_replaces_them(margaret: PatientDemographics) -> None:
    patient = _registered(margaret)
    patient.update_demographics(replace(margaret, phone=""), today=TODAY)
    assert patient.demographics.phone == ""
    assert patient.version == 2


def test_a_forgotten_record_takes_no_changes_and_keeps_no_demographics(
    margaret: PatientDemographics,
) -> None:
    patient = _registered(margaret)
    patient.forget(reason="erasure request")
    assert patient.demographics == FORGOTTEN
    with pytest.raises(PatientForgotten):
        patient.update_demographics(margaret, today=TODAY)
    with pytest.raises(PatientForgotten):
        patient.forget(reason="again")


def test_links_are_recorded_on_the_pair_anchor_the_lower_id(
    margaret: PatientDemographics,
) -> None:
    anchor, other = _anchor_pair()
    assert str(anchor) < str(other)
    assert anchor_of(other, anchor) == (anchor, other)
    patient = _registered(margaret, anchor)
    patient.link(other, basis=LinkBasis.MANUAL, score=0.0)
    assert patient.linked_patient_ids == (other,)
    follower = _registered(margaret, other)
    with pytest.raises(ValueError, match="recorded on"):
        follower.link(anchor, basis=LinkBasis.MANUAL, score=0.0)


def test_a_record_cannot_be_linked_to_itself() -> None:
    same = uuid4()
    with pytest.raises(CannotLinkToItself):
        anchor_of(same, same)


def test_linking_twice_is_refused_and_unlinking_reverses_it(
    margaret: PatientDemographics,
) -> None:
    anchor, other = _anchor_pair()
    patient = _registered(margaret, anchor)
    patient.link(other, basis=LinkBasis.AUTOMATIC, score=31.5)
    with pytest.raises(PatientsAlreadyLinked):
        patient.link(other, basis=LinkBasis.MANUAL, score=0.0)
    patient.unlink(other, reason="different people")
    assert patient.linked_patient_ids == ()
    with pytest.raises(PatientsNotLinked):
        patient.unlink(other, reason="again")
    patient.link(other, basis=LinkBasis.MANUAL, score=0.0)
    assert other in patient.linked_patient_ids


def test_a_forgotten_anchor_takes_no_links(margaret: PatientDemographics) -> None:
    anchor, other = _anchor_pair()
    patient = _registered(margaret, anchor)
    patient.forget(reason="erasure request")
    with pytest.raises(PatientForgotten):
        patient.link(other, basis=LinkBasis.MANUAL, score=0.0)


def test_every_event_survives_the_payload_round_trip(margaret: PatientDemographics) -> None:
    anchor, other = _anchor_pair()
    patient = _registered(margaret, anchor)
    patient.record_match_assessment(MatchAssessment(MatchGrade.NO_MATCH, (), 0, 20.0, 8.0, "test"))
    patient.update_demographics(replace(margaret, email=""), today=TODAY)
    patient.link(other, basis=LinkBasis.MANUAL, score=0.0)
    patient.unlink(other, reason="wrong person")
    patient.assign_care_team_member("dr-who")
    patient.end_care_team_member("dr-who", reason="discharged")
    patient.forget(reason="erasure request")
    stored = [
        PATIENT_EVENTS.from_stored(
            str(anchor), e.originator_version, datetime.now(UTC), type(e).__name__,
            PATIENT_EVENTS.to_payload(e).SerializeToString(),
        )
        for e in patient.collect_events()
    ]  # fmt: skip
    rebuilt = replay(PATIENT_EVENTS, stored)
    assert rebuilt is not None
    assert rebuilt.version == 8
    assert rebuilt.care_team == ()
    assert rebuilt.forgotten
    assert rebuilt.match_assessment == patient.match_assessment


def test_a_care_team_member_is_assigned_once_and_ended_with_a_reason(
    margaret: PatientDemographics,
) -> None:
    patient = _registered(margaret)
    patient.assign_care_team_member("dr-who")
    patient.assign_care_team_member("dr-who")  # already on the team: nothing new to record

    assert list(patient.care_team) == ["dr-who"]
    assert patient.version == 2
    patient.end_care_team_member("dr-who", reason="discharged")
    assert list(patient.care_team) == []
    with pytest.raises(NotOnCareTeam):
        patient.end_care_team_member("dr-who", reason="again")


def test_a_forgotten_record_takes_no_care_team(margaret: PatientDemographics) -> None:
    patient = _registered(margaret)
    patient.forget(reason="erasure request")

    with pytest.raises(PatientForgotten):
        patient.assign_care_team_member("dr-who")
