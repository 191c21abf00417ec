"""From Keycloak's claims to the platform principal: roles, privileges, MFA, context, client."""

from __future__ import annotations

from typing import Any

import pytest

from clinical_platform.principals import Role
from gateway.domain.identity import IdentityMapping, UnusableIdentityError
from gateway.domain.scopes import Context

pytestmark = pytest.mark.unit

MAPPING = IdentityMapping()


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "u-1", "azp": "clinical-cli", "realm_access": {"roles": []}, **extra}


def test_roles_and_the_signer_privilege_come_from_realm_roles() -> None:
    caller = MAPPING.caller(
        claims(realm_access={"roles": ["clinician", "orders-signer", "admin", "offline_access"]})
    )
    assert caller.principal.roles == {Role.CLINICIAN}
    assert caller.principal.privileges == {"orders:sign"}


@pytest.mark.parametrize(
    ("amr", "acr", "mfa"),
    [
        (["pwd"], "1", False),
        (["pwd", "otp"], "1", True),
        ([], "2", True),
        (None, None, False),
        (["pwd", "hwk"], None, True),
        ("otp", None, False),
        ("nomfa", None, False),
        (["nomfa"], None, False),
    ],
)
def test_mfa_comes_from_amr_or_a_multi_factor_acr(amr: Any, acr: Any, mfa: bool) -> None:
    assert MAPPING.caller(claims(amr=amr, acr=acr)).principal.mfa is mfa


def test_a_patient_token_carries_the_launch_patient_and_the_patient_context() -> None:
    caller = MAPPING.caller(
        claims(
            realm_access={"roles": ["patient"]}, patient="p-1", scope="patient/*.rs launch/patient"
        )
    )
    assert caller.principal.patient_id == "p-1"
    assert caller.contexts == {Context.PATIENT, Context.USER}
    assert {s.text for s in caller.scopes} == {"patient/*.rs"}


def test_a_client_credentials_token_is_a_system_caller() -> None:
    caller = MAPPING.caller(claims(azp="partner", client_id="partner", scope="system/*.rs"))
    assert caller.contexts == {Context.SYSTEM}
    assert caller.principal.client_id == "partner"
    assert caller.rate_keys == ("client:partner", "user:u-1")


def test_a_delegated_token_names_who_it_acts_for() -> None:
    caller = MAPPING.caller(claims(act={"sub": "clinician-7"}))
    assert caller.principal.on_behalf_of == "clinician-7"


def test_a_token_without_subject_is_unusable() -> None:
    with pytest.raises(UnusableIdentityError):
        MAPPING.caller({"azp": "x"})


def test_the_login_time_is_carried_for_recent_mfa_rules() -> None:
    login, issued = 1_700_000_000, 1_700_000_600
    assert MAPPING.caller(claims(auth_time=login, iat=issued)).principal.auth_time == login
    assert MAPPING.caller(claims(iat=issued)).principal.auth_time == issued
    assert MAPPING.caller(claims(auth_time="soon")).principal.auth_time == 0
    assert MAPPING.caller(claims()).principal.auth_time == 0
