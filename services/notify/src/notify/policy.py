"""Who may subscribe to what, and whether an owner may still receive a notification.

The same rules run when a subscription is created and again at every delivery, where the
facts may have changed (the patient was forgotten). A notification that fails the check at
delivery keeps its number but goes out as "withheld", so sequences stay gapless. A lapsed
grant (expired, revoked) is checked before that: it delivers nothing at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from clinical_platform.principals import Principal, Role
from clinical_platform.validation import FieldViolation
from notify.domain.errors import InvalidSubscription
from notify.domain.subscription import Content, Filter, Owner

# Staff who may hear about any patient's orders and results.
STAFF = frozenset({Role.CLINICIAN.value, Role.LAB.value})
REVOKE_PRIVILEGE = "notify:revoke"
"""Administrators revoke anyone's subscriptions (an employee who left)."""


@dataclass(frozen=True)
class Quotas:
    """Active (neither expired nor revoked nor deleted) subscriptions an owner may hold."""

    per_owner: int = 20
    per_patient: int = 5

    def limit_for(self, owner: Owner) -> int:
        return self.per_owner if is_staff(owner) else self.per_patient


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


def authorized_filter(owner: Owner, event_filter: Filter, content: Content) -> Filter:
    """The filter ``owner`` subscribes with (`scoped_filter`); AccessRefused if they may not,
    InvalidSubscription when full content lacks the filter it needs."""
    if refusal := creation_refusal(owner, event_filter):
        raise AccessRefused(refusal)
    scoped = scoped_filter(owner, event_filter)
    if content is Content.FULL and (problems := full_content_problems(owner, scoped)):
        raise InvalidSubscription(problems)
    return scoped


def full_content_problems(owner: Owner, event_filter: Filter) -> list[FieldViolation]:
    """Full content for staff names its patients, or the care team whose orders it follows
    (orderers, the owner among them): never every patient's PHI at once."""
    if not is_staff(owner) or event_filter.patient_ids:
        return []
    if not event_filter.orderers:
        return [FieldViolation("filter.patient_ids", "is required for FULL content, unless "
                               "filter.orderers names your care team")]  # fmt: skip
    if owner.subject not in event_filter.orderers:
        return [FieldViolation("filter.orderers", "must include yourself for FULL content "
                               "without filter.patient_ids (your care team's orders)")]  # fmt: skip
    return []


def is_administrator(principal: Principal) -> bool:
    """Administrators revoke anyone's subscriptions; owners only their own."""
    return REVOKE_PRIVILEGE in principal.privileges


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


def decide(
    owner: Owner, content: Content, patient_id: str, *, forgotten: bool, event_filter: Filter
) -> Decision:  # fmt: skip
    """Re-check, at delivery, that the owner may receive this notification and in what form.
    Full content needs the filter that full content needs now (`full_content_problems`): a
    subscription recorded before that rule gets identifiers only."""
    if forgotten:
        return Decision(Withheld.FORGOTTEN, Content.ID_ONLY)
    if not in_scope(owner, patient_id):
        return Decision(Withheld.OUT_OF_SCOPE, Content.ID_ONLY)
    if content is Content.FULL and full_content_problems(owner, event_filter):
        return Decision(None, Content.ID_ONLY)
    return Decision(None, content)
