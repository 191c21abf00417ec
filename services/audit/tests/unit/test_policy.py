"""Who may read the audit trail."""

import pytest

from audit.policy import refusal_to_read_trail
from clinical_platform.principals import Principal, Role

pytestmark = pytest.mark.unit


def test_only_auditors_read_the_trail() -> None:
    assert refusal_to_read_trail(Principal("privacy-officer", frozenset({Role.AUDITOR}))) is None
    for role in (Role.CLINICIAN, Role.REGISTRAR, Role.PATIENT):
        assert refusal_to_read_trail(Principal("x", frozenset({role}))) == (
            "only auditors may read the audit trail"
        )
