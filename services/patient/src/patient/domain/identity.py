"""The ids the patient service gives: a registration's record id, and its automatic links'
request ids, derived so that a retry lands on what the first attempt recorded."""

from __future__ import annotations

from uuid import UUID, uuid5

# Patient ids derive from the registering request id: a retried registration lands on the
# same record (and partition) instead of creating a duplicate.
PATIENT_ID_NAMESPACE = UUID("1b4e28ba-2fa1-4d7b-8c7f-3f0e8b5a9c11")


def patient_id_for(subject: str, request_id: str) -> UUID:
    """The id a RegisterPatient creates: a retry by the same caller lands on the same record,
    while another caller who picks the same request id registers a record of their own (and
    never hears of the first one)."""
    return uuid5(PATIENT_ID_NAMESPACE, f"{subject}\n{request_id}")


def link_request_id(request_id: str, other_patient_id: UUID) -> str:
    """The request id of the automatic link a registration records with ``other_patient_id``."""
    return str(uuid5(PATIENT_ID_NAMESPACE, f"{request_id}|link|{other_patient_id}"))
