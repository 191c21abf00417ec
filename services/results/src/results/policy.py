"""Who may do what with results: the service's authorization decisions, in one place.

Each decision answers with the reason for a refusal, or None when the principal may go ahead.
"""

from __future__ import annotations

from clinical_platform.authorization import PatientRecordReaders
from clinical_platform.principals import Principal, Role

# Staff read any patient's results; a patient principal reads only their own. Auditors read
# trails (the audit service), never clinical content.
READERS = PatientRecordReaders(staff=(Role.CLINICIAN, Role.LAB), records="results")


def refusal_to_post(principal: Principal) -> str | None:
    return None if principal.has(Role.LAB) else "only laboratory staff post results"


def refusal_to_amend(principal: Principal) -> str | None:
    return None if principal.has(Role.LAB) else "only laboratory staff amend results"
