"""Who may do what with orders: the service's authorization decisions, in one place.

Each decision answers with the reason for a refusal, or None when the principal may go ahead.
Reasons are sent to the caller and kept in the access audit, so they are the service's own words.
"""

from __future__ import annotations

from clinical_platform.authorization import PatientRecordReaders
from clinical_platform.principals import Principal, Role

SIGN_PRIVILEGE = "orders:sign"
# Staff read any patient's orders; a patient principal reads only their own.
READERS = PatientRecordReaders(staff=(Role.CLINICIAN, Role.LAB, Role.AUDITOR), records="orders")


def refusal_to_place(principal: Principal) -> str | None:
    return None if principal.has(Role.CLINICIAN) else "only clinicians place orders"


def refusal_to_sign(principal: Principal) -> str | None:
    if not principal.has(Role.CLINICIAN) or SIGN_PRIVILEGE not in principal.privileges:
        return f"signing orders needs the {SIGN_PRIVILEGE} privilege"
    if not principal.mfa:
        return "signing orders needs multi-factor authentication"
    return None


def refusal_to_cancel(principal: Principal) -> str | None:
    return None if principal.has(Role.CLINICIAN) else "only clinicians cancel orders"
