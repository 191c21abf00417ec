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


def test_a_patient_reads_only_their_own_record_and_staff_read_any() -> None:
    read = policy.read_record(PATIENT)

    assert read(_principal(Role.PATIENT, patient_id=PATIENT)) is None
    assert read(_principal(Role.PATIENT, patient_id="someone-else")) == (
        "patients may read only their own record"
    )
    assert read(_principal(Role.CLINICIAN)) is None
    assert read(_principal(Role.AUDITOR)) is not None  # trails, not demographics
    assert read(_principal(Role.LAB)) is not None
    assert policy.SEARCH(_principal(Role.PATIENT, patient_id=PATIENT)) is not None
