"""Authorization rules more than one service decides by: who reads a patient's clinical records.

Decisions answer with the reason for a refusal, or None when the principal may go ahead. Reasons
are sent to the caller and kept in the access audit, so they are the service's own words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from clinical_platform.principals import Principal, Role


class ReadGrant(StrEnum):
    """Why a read of one patient's records is allowed."""

    ROLE = "role"
    """Staff who read every patient's records (their work needs it), or the patient themself."""
    RELATIONSHIP = "relationship"
    """A clinician with a care relationship with the patient."""
    BREAK_GLASS = "break-glass"
    """A clinician without one, who declared an emergency and a reason (audited, counted)."""


@dataclass(frozen=True)
class PatientRead:
    """The decision on a read of one patient's records: a grant, or the reason for a refusal."""

    grant: ReadGrant | None = None
    refusal: str | None = None


@dataclass(frozen=True)
class PatientRecordReaders:
    """Who reads a patient's ``records``.

    Staff in ``staff`` read any patient's; staff in ``by_relationship`` (clinicians) only those
    of patients they have a care relationship with, or any by break-glass; a patient principal
    only their own.
    """

    staff: Sequence[Role]
    records: str
    by_relationship: Sequence[Role] = ()

    def refusal_to_read(self, principal: Principal) -> str | None:
        """Whether the principal reads these records at all (whose is decided per read)."""
        if not principal.has(*self.staff, *self.by_relationship, Role.PATIENT):
            return f"this role does not read {self.records}"
        if not self._is_staff(principal) and not principal.patient_id:
            return "the patient token names no patient"
        return None

    def needs_relationship(self, principal: Principal) -> bool:
        """Whether reads of this principal depend on a care relationship (to be looked up)."""
        return principal.has(*self.by_relationship) and not principal.has(*self.staff)

    def read_patient(
        self, principal: Principal, patient_id: str, *, related: bool, break_glass: bool
    ) -> PatientRead:
        """May ``principal`` read ``patient_id``'s records (``related``: a care relationship
        exists; ``break_glass``: the call declared one)? An empty id is a read across patients."""
        if principal.has(*self.staff):
            return PatientRead(ReadGrant.ROLE)
        if self.needs_relationship(principal):
            if related and patient_id:
                return PatientRead(ReadGrant.RELATIONSHIP)
            if break_glass:
                return PatientRead(ReadGrant.BREAK_GLASS)
            return PatientRead(refusal=self._outside_care())
        if patient_id and patient_id == principal.patient_id:
            return PatientRead(ReadGrant.ROLE)
        return PatientRead(refusal=self._only_their_own())

    def refusal_to_learn_absence(self, principal: Principal) -> str | None:
        """A record that does not exist: staff who read every patient's hear so; a clinician
        or a patient hears what a record of someone outside their reach would tell them, so no
        answer reveals which ids exist."""
        if principal.has(*self.staff):
            return None
        if self.needs_relationship(principal):
            return self._outside_care()
        return self._only_their_own()

    def _is_staff(self, principal: Principal) -> bool:
        return principal.has(*self.staff, *self.by_relationship)

    def _only_their_own(self) -> str:
        return f"a patient reads only their own {self.records}"

    def _outside_care(self) -> str:
        return (
            f"a clinician reads {self.records} only of patients in their care, or by "
            "break-glass (x-purpose-of-use ETREAT with an x-break-glass-reason)"
        )

    def patient_to_list(self, principal: Principal, requested: str) -> str:
        """Whose records a list asks for: a patient principal who names nobody means themself."""
        if self._is_staff(principal):
            return requested
        return requested or principal.patient_id
