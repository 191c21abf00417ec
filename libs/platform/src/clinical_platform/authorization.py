"""Authorization rules more than one service decides by: who reads a patient's clinical records.

Decisions answer with the reason for a refusal, or None when the principal may go ahead. Reasons
are sent to the caller and kept in the access audit, so they are the service's own words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clinical_platform.principals import Principal, Role


@dataclass(frozen=True)
class PatientRecordReaders:
    """Staff in ``staff`` read any patient's ``records``; a patient principal only their own."""

    staff: Sequence[Role]
    records: str

    def refusal_to_read(self, principal: Principal) -> str | None:
        """Whether the principal reads these records at all (whose is decided per read)."""
        if not principal.has(*self.staff, Role.PATIENT):
            return f"this role does not read {self.records}"
        if not principal.has(*self.staff) and not principal.patient_id:
            return "the patient token names no patient"
        return None

    def refusal_to_read_patient(self, principal: Principal, patient_id: str) -> str | None:
        if principal.has(*self.staff) or patient_id == principal.patient_id:
            return None
        return self._only_their_own()

    def refusal_to_learn_absence(self, principal: Principal) -> str | None:
        """A record that does not exist: staff hear so; a patient hears what another patient's
        record would tell them, so no answer reveals which ids exist."""
        return None if principal.has(*self.staff) else self._only_their_own()

    def _only_their_own(self) -> str:
        return f"a patient reads only their own {self.records}"

    def patient_to_list(self, principal: Principal, requested: str) -> str:
        """Whose records a list asks for: a patient principal who names nobody means themself."""
        if principal.has(*self.staff):
            return requested
        return requested or principal.patient_id
