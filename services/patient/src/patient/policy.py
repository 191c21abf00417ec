"""Who may do what with patient records: the service's authorization decisions.

Each decision takes the authenticated principal and answers None (allowed) or the reason for
the refusal; the servicer denies with that reason and records the refusal in the access log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from clinical_platform.principals import Principal, Role

Decision = Callable[[Principal], str | None]
"""None when the principal may go ahead, else why not (it reaches the caller and the log)."""

WRITERS = (Role.REGISTRAR, Role.CLINICIAN)
# Auditors read trails (the audit service), never demographics.
READERS = (Role.CLINICIAN, Role.REGISTRAR)
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


def sees_linked_records(principal: Principal) -> bool:
    """Staff see a record's links and the golden record merged from them. A patient sees only
    the record they own: a registration crafted to match someone else's would otherwise hand
    over that person's contact details and identifiers through the golden record."""
    return principal.has(*READERS)


def read_record(patient_id: str) -> Decision:
    """Staff read any record; a patient reads only their own."""

    def decide(principal: Principal) -> str | None:
        own_record = principal.has(Role.PATIENT) and principal.patient_id == patient_id
        if principal.has(*READERS) or own_record:
            return None
        return "patients may read only their own record"

    return decide
