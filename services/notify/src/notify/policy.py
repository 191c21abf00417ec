"""Who may subscribe to what, and whether an owner may still receive a notification.

The same rules run when a subscription is created and again at every delivery, where the
facts may have changed (the patient was forgotten). A notification that fails the check at
delivery keeps its number but goes out as "withheld", so sequences stay gapless.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from clinical_platform.principals import Principal, Role
from notify.domain.subscription import Content, Filter, Owner

# Staff who may hear about any patient's orders and results.
STAFF = frozenset({Role.CLINICIAN.value, Role.LAB.value})


class Refusal(StrEnum):
    """Why a principal may not create a subscription (PERMISSION_DENIED)."""

    ROLE = "only clinicians, laboratory staff and patients subscribe to clinical events"
    OTHER_PATIENT = "a patient subscribes only to their own record"
    NO_PATIENT = "the patient principal names no patient record"


class AccessRefused(Exception):  # noqa: N818 - a refusal, carried to PERMISSION_DENIED
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.value)


def owner_of(principal: Principal) -> Owner:
    return Owner(
        subject=principal.subject,
        roles=tuple(sorted(principal.roles)),
        patient_id=principal.patient_id,
        client_id=principal.client_id,
    )


def is_staff(owner: Owner) -> bool:
    return not STAFF.isdisjoint(owner.roles)


def creation_refusal(owner: Owner, event_filter: Filter) -> Refusal | None:
    """Why ``owner`` may not subscribe with this filter, or None."""
    if is_staff(owner):
        return None
    if Role.PATIENT.value not in owner.roles:
        return Refusal.ROLE
    if not owner.patient_id:
        return Refusal.NO_PATIENT
    if any(patient_id != owner.patient_id for patient_id in event_filter.patient_ids):
        return Refusal.OTHER_PATIENT
    return None


def authorized_filter(owner: Owner, event_filter: Filter) -> Filter:
    """The filter ``owner`` subscribes with (`scoped_filter`); AccessRefused if they may not."""
    if refusal := creation_refusal(owner, event_filter):
        raise AccessRefused(refusal)
    return scoped_filter(owner, event_filter)


def scoped_filter(owner: Owner, event_filter: Filter) -> Filter:
    """A patient's subscription is about their own record, whatever else the filter says."""
    if is_staff(owner) or event_filter.patient_ids:
        return event_filter
    return Filter(
        patient_ids=(owner.patient_id,),
        orderers=event_filter.orderers,
        loinc_codes=event_filter.loinc_codes,
        priorities=event_filter.priorities,
        abnormal_only=event_filter.abnormal_only,
    )


def in_scope(owner: Owner, patient_id: str) -> bool:
    """Whether the owner may hear about this patient at all."""
    if is_staff(owner):
        return True
    return Role.PATIENT.value in owner.roles and bool(patient_id) and patient_id == owner.patient_id


class Withheld(StrEnum):
    """Why a numbered notification goes out without its event."""

    OUT_OF_SCOPE = "out-of-scope"
    FORGOTTEN = "patient-forgotten"


@dataclass(frozen=True)
class Decision:
    """The decision for one notification: what to send."""

    withheld: Withheld | None
    content: Content


def decide(owner: Owner, content: Content, patient_id: str, *, forgotten: bool) -> Decision:
    """Re-check, at delivery, that the owner may receive this notification and in what form."""
    if forgotten:
        return Decision(Withheld.FORGOTTEN, Content.ID_ONLY)
    if not in_scope(owner, patient_id):
        return Decision(Withheld.OUT_OF_SCOPE, Content.ID_ONLY)
    return Decision(None, content)
