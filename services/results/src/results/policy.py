"""Who may do what with results: the service's authorization decisions, in one place.

Each decision answers with the reason for a refusal, or None when the principal may go ahead.
"""

from __future__ import annotations

from clinical_platform.authorization import PatientRecordReaders
from clinical_platform.principals import Principal, Role

# Lab staff read any patient's results (they post them); a clinician those of patients in their
# care (a care-team assignment, an order they placed), or any by break-glass; a patient their
# own. Auditors read trails (the audit service), never clinical content.
READERS = PatientRecordReaders(
    staff=(Role.LAB,), by_relationship=(Role.CLINICIAN,), records="results"
)


def refusal_to_post(principal: Principal) -> str | None:
    return None if principal.has(Role.LAB) else "only laboratory staff post results"


def refusal_to_amend(principal: Principal) -> str | None:
    return None if principal.has(Role.LAB) else "only laboratory staff amend results"
