"""What the patient domain refuses. Messages name ids and rules, never demographics."""

from __future__ import annotations

from uuid import UUID

from clinical_platform.validation import FieldViolation, InvalidRequest


class PatientDomainError(Exception):
    """Base class of the patient domain's refusals."""


class InvalidDemographics(PatientDomainError, InvalidRequest):  # noqa: N818 - like its kin
    """The demographics break a rule (INVALID_ARGUMENT with the field violations)."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        InvalidRequest.__init__(self, violations)


class PatientNotFound(PatientDomainError):  # noqa: N818
    """No record has this id (NOT_FOUND)."""

    def __init__(self, patient_id: UUID) -> None:
        self.patient_id = patient_id
        super().__init__(f"patient {patient_id} not found")


class PatientForgotten(PatientDomainError):  # noqa: N818
    """The record was forgotten; it takes no further changes or links (FAILED_PRECONDITION)."""

    def __init__(self, patient_id: UUID) -> None:
        self.patient_id = patient_id
        super().__init__(f"patient {patient_id} was forgotten")


class CannotLinkToItself(PatientDomainError):  # noqa: N818
    """A record cannot be linked to itself (INVALID_ARGUMENT)."""

    def __init__(self) -> None:
        super().__init__("a record cannot be linked to itself")


class PatientsAlreadyLinked(PatientDomainError):  # noqa: N818
    """The pair is linked already (FAILED_PRECONDITION)."""

    def __init__(self, anchor: UUID, other: UUID) -> None:
        super().__init__(f"patients {anchor} and {other} are already linked")


class PatientsNotLinked(PatientDomainError):  # noqa: N818
    """The pair is not linked, so it cannot be unlinked (FAILED_PRECONDITION)."""

    def __init__(self, anchor: UUID, other: UUID) -> None:
        super().__init__(f"patients {anchor} and {other} are not linked")


class NotOnCareTeam(PatientDomainError):  # noqa: N818
    """Ending a care-team assignment the record does not hold."""

    def __init__(self) -> None:
        super().__init__("this clinician is not on the patient's care team")
