"""The Subscription aggregate: what a companion app wants to hear about, and where.

A subscription is created once (after its webhook, if any, answered the handshake), may have
its webhook secret rotated, and is deleted. Its grant expires unless the owner renews it in
time, and the owner or an administrator may revoke it; either way it delivers nothing more.
It never changes what it matches: a different interest is a different subscription, so every
number in its sequence means the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from clinical_platform.terminology import loinc_problem
from clinical_platform.validation import FieldViolation
from notify.domain.errors import (
    InvalidSubscription,
    SubscriptionDeleted,
    SubscriptionExpired,
    SubscriptionRevoked,
)
from notify.domain.webhook import WebhookSecret

MAX_FILTER_VALUES = 100
PRIORITIES = frozenset({"routine", "urgent", "stat"})
DEFAULT_LIFETIME = timedelta(days=30)
"""A grant's lifetime unless settings say otherwise; also the lifetime of subscriptions
recorded before grants expired (their SubscriptionCreated carries no expires_at)."""


class Topic(StrEnum):
    ORDER_SIGNED = "order.signed"
    RESULT_POSTED = "result.posted"
    ORDER_CANCELLED = "order.cancelled"
    RESULT_AMENDED = "result.amended"


class Content(StrEnum):
    ID_ONLY = "id-only"
    FULL = "full"


class PayloadFormat(StrEnum):
    """How a webhook's POSTs are written: notify's own JSON, or a FHIR R4 notification Bundle
    (the Subscriptions R5 Backport IG, `clinical_platform.fhir_notifications`)."""

    NATIVE = "native"
    FHIR_R4_BACKPORT = "fhir-r4-backport"


class Lapse(StrEnum):
    """Why a subscription's grant no longer holds: nothing more is delivered."""

    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class Owner:
    """The principal a subscription belongs to, as authorization at delivery needs it."""

    subject: str
    roles: tuple[str, ...]
    patient_id: str = ""
    client_id: str = ""


@dataclass(frozen=True)
class Filter:
    """Every non-empty field must match; values within a field are alternatives."""

    patient_ids: tuple[str, ...] = ()
    orderers: tuple[str, ...] = ()
    loinc_codes: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    abnormal_only: bool = False

    def problems(self) -> list[FieldViolation]:
        violations = []
        for name in ("patient_ids", "orderers", "loinc_codes", "priorities"):
            if len(getattr(self, name)) > MAX_FILTER_VALUES:
                violations.append(
                    FieldViolation(f"filter.{name}", f"has more than {MAX_FILTER_VALUES} values")
                )
        for index, patient_id in enumerate(self.patient_ids):
            if not _is_uuid(patient_id):
                violations.append(FieldViolation(f"filter.patient_ids[{index}]", "is not a UUID"))
        for index, code in enumerate(self.loinc_codes):
            if problem := loinc_problem(code):
                violations.append(FieldViolation(f"filter.loinc_codes[{index}]", problem))
        for index, priority in enumerate(self.priorities):
            if priority not in PRIORITIES:
                violations.append(
                    FieldViolation(f"filter.priorities[{index}]", "must be routine, urgent or stat")
                )
        for index, orderer in enumerate(self.orderers):
            if not orderer.strip():
                violations.append(FieldViolation(f"filter.orderers[{index}]", "is empty"))
        return violations


class Subscription(Aggregate):
    """One owner's interest in clinical events, delivered by stream and optionally by webhook."""

    @classmethod
    def create(
        cls,
        *,
        subscription_id: UUID,
        owner: Owner,
        topics: Sequence[Topic],
        event_filter: Filter,
        content: Content,
        webhook_url: str,
        secret: WebhookSecret | None,
        at: datetime,
        lifetime: timedelta = DEFAULT_LIFETIME,
        payload_format: PayloadFormat = PayloadFormat.NATIVE,
    ) -> Subscription:
        """A new subscription; raises InvalidSubscription listing every broken rule."""
        violations = event_filter.problems()
        if not topics:
            violations.insert(0, FieldViolation("topics", "must name at least one topic"))
        # A FHIR notification names one SubscriptionTopic: the FHIR Subscription's criteria.
        if payload_format is PayloadFormat.FHIR_R4_BACKPORT and len(set(topics)) > 1:
            violations.append(
                FieldViolation("topics", "must name exactly one topic for FHIR_R4_BACKPORT")
            )
        if webhook_url and secret is None:
            violations.append(FieldViolation("webhook.url", "needs a signing secret"))
        if violations:
            raise InvalidSubscription(violations)
        return cls(
            id=subscription_id, owner=owner, topics=tuple(dict.fromkeys(topics)),
            event_filter=event_filter, content=content, webhook_url=webhook_url,
            secrets=(secret,) if secret else (), created_at=at, expires_at=at + lifetime,
            payload_format=payload_format.value,
        )  # fmt: skip

    @event("SubscriptionCreated")
    def __init__(
        self,
        id: UUID,
        *,
        owner: Owner,
        topics: tuple[Topic, ...],
        event_filter: Filter,
        content: Content,
        webhook_url: str,
        secrets: tuple[WebhookSecret, ...],
        created_at: datetime,
        expires_at: datetime | None = None,
        payload_format: str = "",
    ) -> None:
        self.owner = owner
        # Recorded before FHIR notifications: "" (native).
        self.payload_format = PayloadFormat(payload_format or PayloadFormat.NATIVE)
        self.topics = topics
        self.event_filter = event_filter
        self.content = content
        self.webhook_url = webhook_url
        self.secrets = secrets
        self.created_at = created_at
        self.expires_at = expires_at or created_at + DEFAULT_LIFETIME
        self.deleted_at: datetime | None = None
        self.revoked_at: datetime | None = None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    def lapse(self, now: datetime) -> Lapse | None:
        """Why the grant no longer holds at ``now``, or None while it does."""
        return grant_lapse(self.revoked_at, self.expires_at, now)

    def renew(self, *, at: datetime, lifetime: timedelta) -> None:
        """Extend the grant to ``at + lifetime``; a lapsed grant is not revived."""
        self._refuse_if_deleted()
        if self.revoked_at is not None:
            raise SubscriptionRevoked(self.id)
        if self.expires_at <= at:
            raise SubscriptionExpired(self.id)
        self._renew(renewed_at=at, expires_at=at + lifetime)

    @event("SubscriptionRenewed")
    def _renew(self, *, renewed_at: datetime, expires_at: datetime) -> None:
        self.expires_at = expires_at

    def revoke(self, *, by: str, at: datetime) -> None:
        """End the grant: nothing more is matched or delivered. Revoking twice is a no-op."""
        if self.deleted or self.revoked_at is not None:
            return
        self._revoke(revoked_by=by, revoked_at=at)

    @event("SubscriptionRevoked")
    def _revoke(self, *, revoked_by: str, revoked_at: datetime) -> None:
        self.revoked_at = revoked_at

    def rotate_secret(self, new: WebhookSecret, *, at: datetime, overlap: timedelta) -> None:
        """Sign with ``new`` from now on, and with the current secret too until ``at + overlap``."""
        self._refuse_if_deleted()
        if not self.webhook_url:
            raise InvalidSubscription(
                [FieldViolation("subscription_id", "has no webhook, so no secret to rotate")]
            )
        self._rotate_secret(
            ciphertext=new.ciphertext, rotated_at=at, previous_valid_until=at + overlap
        )

    @event("WebhookSecretRotated")
    def _rotate_secret(
        self, *, ciphertext: str, rotated_at: datetime, previous_valid_until: datetime
    ) -> None:
        previous = WebhookSecret(self.secrets[0].ciphertext, previous_valid_until)
        self.secrets = (WebhookSecret(ciphertext), previous)

    def delete(self, *, by: str, at: datetime) -> None:
        """Stop matching and delivering; deleting twice is a no-op."""
        if self.deleted:
            return
        self._delete(deleted_by=by, deleted_at=at)

    @event("SubscriptionDeleted")
    def _delete(self, *, deleted_by: str, deleted_at: datetime) -> None:
        self.deleted_at = deleted_at

    def _refuse_if_deleted(self) -> None:
        if self.deleted:
            raise SubscriptionDeleted(self.id)


def grant_lapse(revoked_at: datetime | None, expires_at: datetime, now: datetime) -> Lapse | None:
    if revoked_at is not None:
        return Lapse.REVOKED
    if expires_at <= now:
        return Lapse.EXPIRED
    return None


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class SubscriptionView:
    """A subscription as queries, the matcher and the delivery workers read it."""

    subscription_id: str
    owner: Owner
    topics: tuple[Topic, ...]
    event_filter: Filter
    content: Content
    webhook_url: str
    secrets: tuple[WebhookSecret, ...]
    created_at: datetime
    version: int
    deleted_at: datetime | None = None
    expires_at: datetime | None = None  # None: created_at + DEFAULT_LIFETIME
    revoked_at: datetime | None = None
    payload_format: PayloadFormat = PayloadFormat.NATIVE

    @property
    def grant_expires_at(self) -> datetime:
        return self.expires_at or self.created_at + DEFAULT_LIFETIME

    def lapse(self, now: datetime) -> Lapse | None:
        """Why the grant no longer holds at ``now`` (nothing more is delivered), or None."""
        return grant_lapse(self.revoked_at, self.grant_expires_at, now)

    def signing_secrets(self, now: datetime) -> tuple[str, ...]:
        return tuple(
            s.ciphertext for s in self.secrets if s.valid_until is None or now < s.valid_until
        )
