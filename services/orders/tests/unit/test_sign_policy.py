"""Who may sign an order: a clinician with the privilege, whose MFA login is minutes old."""

import pytest

from clinical_platform.principals import Principal, Role
from orders.policy import SIGN_PRIVILEGE, refusal_to_sign

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0


def clinician(**changes: object) -> Principal:
    values: dict[str, object] = {
        "subject": "dr-a", "roles": frozenset({Role.CLINICIAN}),
        "privileges": frozenset({SIGN_PRIVILEGE}), "mfa": True, "auth_time": int(NOW) - 60,
    }  # fmt: skip
    return Principal(**{**values, **changes})  # type: ignore[arg-type]


def test_a_clinician_with_a_fresh_mfa_login_signs() -> None:
    assert refusal_to_sign(clinician(), now=NOW) is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"privileges": frozenset()}, "needs the orders:sign privilege"),
        ({"mfa": False}, "needs multi-factor authentication"),
        ({"auth_time": int(NOW) - 301}, "in the last 5 minutes (auth_time)"),
        ({"auth_time": 0}, "in the last 5 minutes (auth_time)"),
    ],
)
def test_signing_is_refused_with_its_reason(changes: dict[str, object], reason: str) -> None:
    refusal = refusal_to_sign(clinician(**changes), now=NOW)
    assert refusal is not None
    assert reason in refusal
