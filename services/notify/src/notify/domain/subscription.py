"""The Subscription aggregate: what a companion app wants to hear about, and where.

A subscription is created once (after its webhook, if any, answered the handshake), may have
its webhook secret rotated, and is deleted. It never changes what it matches: a different
interest is a different subscription, so every number in its sequence means the same thing.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from clinical_platform.terminology import loinc_problem
from clinical_platform.validation import FieldViolation
from notify.domain.errors import InvalidSubscription, SubscriptionDeleted

MAX_FILTER_VALUES = 100
MAX_URL_CHARS = 2048
PRIORITIES = frozenset({"routine", "urgent", "stat"})
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32


class Topic(StrEnum):
    ORDER_SIGNED = "order.signed"
    RESULT_POSTED = "result.posted"
    ORDER_CANCELLED = "order.cancelled"
    RESULT_AMENDED = "result.amended"


class Content(StrEnum):
    ID_ONLY = "id-only"
    FULL = "full"


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


@dataclass(frozen=True)
class WebhookSecret:
    """A signing secret as the log holds it: encrypted by the notify service's Transit key."""

    ciphertext: str
    valid_until: datetime | None = None  # None: the current secret


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def webhook_url_problem(url: str, *, allow_http: bool) -> str | None:
    """Why a webhook URL is unacceptable, or None."""
    if len(url) > MAX_URL_CHARS:
        return f"is longer than {MAX_URL_CHARS} characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return "is not a URL"
    allowed = ("https", "http") if allow_http else ("https",)
    problems = (
        (
            parts.scheme not in allowed,
            "must be an http(s) URL" if allow_http else "must be an https URL",
        ),
        (not parts.hostname, "has no host"),
        (bool(parts.username or parts.password), "must not carry credentials"),
        (bool(parts.fragment), "must not have a fragment"),
    )
    return next((problem for broken, problem in problems if broken), None)


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
    ) -> Subscription:
        """A new subscription; raises InvalidSubscription listing every broken rule."""
        violations = event_filter.problems()
        if not topics:
            violations.insert(0, FieldViolation("topics", "must name at least one topic"))
        if webhook_url and secret is None:
            violations.append(FieldViolation("webhook.url", "needs a signing secret"))
        if violations:
            raise InvalidSubscription(violations)
        return cls(
            id=subscription_id, owner=owner, topics=tuple(dict.fromkeys(topics)),
            event_filter=event_filter, content=content, webhook_url=webhook_url,
            secrets=(secret,) if secret else (), created_at=at,
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
    ) -> None:
        self.owner = owner
        self.topics = topics
        self.event_filter = event_filter
        self.content = content
        self.webhook_url = webhook_url
        self.secrets = secrets
        self.created_at = created_at
        self.deleted_at: datetime | None = None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

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

    def signing_secrets(self, now: datetime) -> tuple[str, ...]:
        return tuple(
            s.ciphertext for s in self.secrets if s.valid_until is None or now < s.valid_until
        )
