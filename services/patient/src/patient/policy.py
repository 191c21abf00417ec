"""Who may do what with patient records: the service's authorization decisions.

Each decision takes the authenticated principal and answers None (allowed) or the reason for
the refusal; the servicer denies with that reason and records the refusal in the access log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from clinical_platform.authorization import PatientRecordReaders
from clinical_platform.principals import Principal, Role

Decision = Callable[[Principal], str | None]
"""None when the principal may go ahead, else why not (it reaches the caller and the log)."""

WRITERS = (Role.REGISTRAR, Role.CLINICIAN)
# Auditors read trails (the audit service), never demographics.
READERS = (Role.CLINICIAN, Role.REGISTRAR)
# Registrars read any record: registration, identity matching and care-team assignment are
# their work, on patients nobody treats yet. A clinician reads the records of patients in their
# care (a care-team assignment, an order they placed) or any by break-glass; a patient their own.
RECORD_READERS = PatientRecordReaders(
    staff=(Role.REGISTRAR,), by_relationship=(Role.CLINICIAN,), records="patient records"
)
CARE_TEAM_PRIVILEGE = "care-team:manage"
# Links and erasure change which records count as one person: registrars only.
IDENTITY_KEEPERS = (Role.REGISTRAR,)


@dataclass(frozen=True)
class NeedsRole:
    """Allowed to principals holding any of ``roles``."""

    roles: tuple[Role, ...]
    activity: str

    def __call__(self, principal: Principal) -> str | None:
        if principal.has(*self.roles):
            return None
        return f"{self.activity} needs the role {' or '.join(self.roles)}"


REGISTER = NeedsRole(WRITERS, "registering patients")
UPDATE = NeedsRole(WRITERS, "updating patients")
SEARCH = NeedsRole(READERS, "searching patients")
MATCH = NeedsRole(READERS, "matching patients")
LINK = NeedsRole(IDENTITY_KEEPERS, "linking patients")
UNLINK = NeedsRole(IDENTITY_KEEPERS, "unlinking patients")
FORGET = NeedsRole(IDENTITY_KEEPERS, "forgetting patients")
# Enumerating every record is the index keepers' and the platform's own services' (bulk export).
LIST = NeedsRole((Role.REGISTRAR, Role.SERVICE), "listing every patient")


def manage_care_team(principal: Principal) -> str | None:
    """Registrars assign care teams; a clinician only with the care-team:manage privilege, since
    an assignment opens the patient's records to its member without break-glass."""
    if principal.has(Role.REGISTRAR):
        return None
    if principal.has(Role.CLINICIAN) and CARE_TEAM_PRIVILEGE in principal.privileges:
        return None
    return f"care-team assignments need the registrar role or the {CARE_TEAM_PRIVILEGE} privilege"


def sees_linked_records(principal: Principal) -> bool:
    """Staff see a record's links and the golden record merged from them. A patient sees only
    the record they own: a registration crafted to match someone else's would otherwise hand
    over that person's contact details and identifiers through the golden record."""
    return principal.has(*READERS)
