"""Who may do what with patient records."""

import pytest

from clinical_platform.principals import Principal, Role
from patient import policy

pytestmark = pytest.mark.unit

PATIENT = "5b0f6c4e-2a51-4f0e-9a57-3f0d8e6b2c41"


def _principal(*roles: Role, patient_id: str = "") -> Principal:
    return Principal("someone", frozenset(roles), patient_id=patient_id)


def test_registrars_and_clinicians_write_and_only_registrars_link_or_forget() -> None:
    for role in (Role.REGISTRAR, Role.CLINICIAN):
        assert policy.REGISTER(_principal(role)) is None
        assert policy.UPDATE(_principal(role)) is None
    assert policy.REGISTER(_principal(Role.AUDITOR)) == (
        "registering patients needs the role registrar or clinician"
    )
    for decision in (policy.LINK, policy.UNLINK, policy.FORGET):
        assert decision(_principal(Role.REGISTRAR)) is None
        assert decision(_principal(Role.CLINICIAN)) is not None


def test_registrars_read_any_record_clinicians_those_in_their_care_patients_their_own() -> None:
    readers = policy.RECORD_READERS

    def refusal(principal: Principal, *, related: bool = False, glass: bool = False) -> str | None:
        if readers.refusal_to_read(principal) is not None:
            return readers.refusal_to_read(principal)
        return readers.read_patient(principal, PATIENT, related=related, break_glass=glass).refusal

    assert refusal(_principal(Role.REGISTRAR)) is None
    assert refusal(_principal(Role.PATIENT, patient_id=PATIENT)) is None
    assert refusal(_principal(Role.PATIENT, patient_id="someone-else")) == (
        "a patient reads only their own patient records"
    )
    assert refusal(_principal(Role.CLINICIAN), related=True) is None
    assert refusal(_principal(Role.CLINICIAN), glass=True) is None
    assert refusal(_principal(Role.CLINICIAN)) is not None
    assert refusal(_principal(Role.AUDITOR)) is not None  # trails, not demographics
    assert refusal(_principal(Role.LAB)) is not None
    assert policy.SEARCH(_principal(Role.PATIENT, patient_id=PATIENT)) is not None


def test_care_teams_are_managed_by_registrars_and_clinicians_holding_the_right() -> None:
    assert policy.manage_care_team(_principal(Role.REGISTRAR)) is None
    entitled = Principal("dr", frozenset({Role.CLINICIAN}), frozenset({policy.CARE_TEAM_PRIVILEGE}))
    assert policy.manage_care_team(entitled) is None
    assert policy.manage_care_team(_principal(Role.CLINICIAN)) is not None
    assert policy.manage_care_team(_principal(Role.LAB)) is not None


def test_only_registrars_and_services_list_every_patient() -> None:
    for role in (Role.REGISTRAR, Role.SERVICE):
        assert policy.LIST(_principal(role)) is None
    for role in (Role.CLINICIAN, Role.AUDITOR, Role.PATIENT, Role.LAB):
        assert policy.LIST(_principal(role)) == (
            "listing every patient needs the role registrar or service"
        )
