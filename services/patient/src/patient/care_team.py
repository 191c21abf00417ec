"""CareTeamApp: the care-team commands of the patient service.

A care-team assignment is a care relationship: every service that serves the patient's data
follows it on the patient topic (`clinical_platform.care.relationships`) and lets the clinician
read the patient's records while it lasts.
"""

from __future__ import annotations

from uuid import UUID

from patient.domain.errors import PatientNotFound
from patient.domain.patient import Patient
from patient.ports import CommandContext, PatientRepository


class CareTeamApp:
    """Assign clinicians to a patient's care team and end their assignment."""

    def __init__(self, patients: PatientRepository) -> None:
        self._patients = patients

    async def assign_care_team_member(
        self, context: CommandContext, patient_id: UUID, member_subject: str
    ) -> int:
        """Put ``member_subject`` on the patient's care team; returns the record's version."""

        def assign(patient: Patient | None) -> Patient:
            patient = _existing(patient, patient_id)
            patient.assign_care_team_member(member_subject)
            return patient

        return (await self._patients.execute(patient_id, context, assign)).version

    async def end_care_team_member(
        self, context: CommandContext, patient_id: UUID, member_subject: str, *, reason: str
    ) -> int:
        """Take ``member_subject`` off the patient's care team; returns the record's version."""

        def end(patient: Patient | None) -> Patient:
            patient = _existing(patient, patient_id)
            patient.end_care_team_member(member_subject, reason=reason)
            return patient

        return (await self._patients.execute(patient_id, context, end)).version


def _existing(patient: Patient | None, patient_id: UUID) -> Patient:
    if patient is None:
        raise PatientNotFound(patient_id)
    return patient
