"""Who may do what with orders: the service's authorization decisions, in one place.

Each decision answers with the reason for a refusal, or None when the principal may go ahead.
Reasons are sent to the caller and kept in the access audit, so they are the service's own words.
"""

from __future__ import annotations

from clinical_platform.authorization import PatientRecordReaders
from clinical_platform.principals import Principal, Role

SIGN_PRIVILEGE = "orders:sign"
SIGN_MFA_MAX_AGE_S = 300
# Lab staff read any patient's orders (they fill them); a clinician those of patients in their
# care (a care-team assignment, an order they placed), or any by break-glass; a patient their
# own. Auditors read trails (the audit service), never clinical content.
READERS = PatientRecordReaders(
    staff=(Role.LAB,), by_relationship=(Role.CLINICIAN,), records="orders"
)


def refusal_to_place(principal: Principal) -> str | None:
    return None if principal.has(Role.CLINICIAN) else "only clinicians place orders"


def refusal_to_sign(principal: Principal, *, now: float) -> str | None:
    if not principal.has(Role.CLINICIAN) or SIGN_PRIVILEGE not in principal.privileges:
        return f"signing orders needs the {SIGN_PRIVILEGE} privilege"
    if not principal.mfa:
        return "signing orders needs multi-factor authentication"
    # A signature is a fresh act of the clinician: an MFA login hours old could be anyone at an
    # unlocked workstation. auth_time is when the user last authenticated.
    if not principal.authenticated_with_mfa_within(SIGN_MFA_MAX_AGE_S, now=now):
        return (
            f"signing orders needs multi-factor authentication in the last "
            f"{SIGN_MFA_MAX_AGE_S // 60} minutes (auth_time)"
        )
    return None


def refusal_to_cancel(principal: Principal) -> str | None:
    return None if principal.has(Role.CLINICIAN) else "only clinicians cancel orders"
