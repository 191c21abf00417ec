"""The ports notify's application and entrypoints need; adapters/ implements them over
MongoDB, Kafka, Vault Transit and HTTP."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from clinical_platform.access.records import RequestOrigin
from clinical_platform.eventlog.context import CommandContext
from notify.domain.delivery import Delivery
from notify.domain.feed import FeedEntry
from notify.domain.notification import Notification
from notify.domain.subscription import Owner, Subscription, SubscriptionView


@dataclass(frozen=True)
class Executed:
    """A command's append: the version it reached, and the subscription as it is now."""

    version: int
    subscription: Subscription


class Subscriptions(Protocol):
    """Subscription aggregates on the log, with their read model written straight after each
    append (so the creator can use a subscription at once)."""

    async def get(self, subscription_id: UUID) -> Subscription | None: ...

    async def execute(
        self,
        subscription_id: UUID,
        context: CommandContext,
        command: Callable[[Subscription | None], Subscription],
    ) -> Executed: ...

    async def view(self, subscription_id: UUID) -> SubscriptionView | None:
        """The read model's view; built from the log when the read model lacks it."""
        ...

    async def views_of(
        self, owner: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[SubscriptionView]:
        """The owner's live subscriptions, oldest first, after the ``after`` position."""
        ...

    async def active_count(self, owner: str, now: datetime) -> int:
        """How many of the owner's subscriptions neither expired, nor were revoked or deleted."""
        ...


class SubscriptionViews(Protocol):
    """The subscription read model as the matcher and the webhook workers keep and read it."""

    async def save(self, subscription: Subscription) -> None: ...

    async def subscription(self, subscription_id: str) -> SubscriptionView | None: ...

    async def live_subscriptions(self) -> list[tuple[SubscriptionView, int | None]]: ...

    async def set_created_timestamp(self, subscription_id: str, timestamp_ms: int) -> None: ...

    async def set_deleted_timestamp(self, subscription_id: str, timestamp_ms: int) -> None: ...


class Feed(Protocol):
    """Every subscription's numbered notifications (ids only)."""

    async def append(self, entry: FeedEntry) -> bool:
        """False when the event was numbered for the subscription already; raises
        `NumberTaken` when the number belongs to another event."""
        ...

    async def head(self, subscription_id: str) -> int: ...

    async def entries(self, subscription_id: str, *, after: int, limit: int) -> list[FeedEntry]: ...


class NumberTaken(Exception):  # noqa: N818 - a state: another writer numbered it first
    """The sequence number was taken by another event (a writer that still thought it owned
    the subscription)."""


class KeptEvents(Protocol):
    """The matched events' envelopes, payload still encrypted under the patient's key."""

    async def keep(self, event_id: str, patient_id: str, envelope: bytes) -> None: ...

    async def envelopes(self, event_ids: Sequence[str]) -> dict[str, bytes | None]:
        """None for a forgotten patient's event (or one never kept)."""
        ...


class EventIndex(Protocol):
    """Per order and result, the facts filters need (patient, orderer, priority, test)."""

    async def index(self, aggregate_id: str, version: int, fields: dict[str, Any]) -> None: ...

    async def indexed(self, aggregate_id: str) -> dict[str, Any] | None: ...


class DeliveryProgress(Protocol):
    """Each webhook subscription's delivery state."""

    async def delivery(self, subscription_id: str) -> Delivery: ...

    async def save(
        self, subscription_id: str, delivery: Delivery, *, sent: Sequence[int] = ()
    ) -> None: ...

    async def dead_letter(
        self, subscription_id: str, delivery: Delivery, sequence: int
    ) -> None: ...

    async def queue_resend(self, subscription_id: str, sequences: Sequence[int]) -> None: ...


class Renderer(Protocol):
    """Feed entries as the owner may receive them now (authorization re-checked)."""

    async def render_all(
        self,
        subscription: SubscriptionView,
        entries: Sequence[FeedEntry],
        envelopes: Mapping[str, bytes | None] | None = None,
    ) -> list[Notification]:
        """``envelopes`` by event id when the caller holds them (else they are read)."""
        ...


class SecretBox(Protocol):
    """Webhook signing secrets sealed for the log and opened for signing."""

    async def seal(self, secret: str) -> str: ...

    async def open(self, ciphertext: str) -> str: ...


@dataclass(frozen=True)
class Outcome:
    """What became of one POST: None when the endpoint answered 2xx, else why not."""

    error: str | None

    @property
    def delivered(self) -> bool:
        return self.error is None


class WebhookSender(Protocol):
    async def handshake(self, url: str, subscription_id: str, secret: str) -> Outcome: ...

    async def post(
        self, url: str, message_id: str, body: str, secrets: Sequence[str],
        *, content_type: str = "application/json",
    ) -> Outcome: ...  # fmt: skip


class Disclosures(Protocol):
    async def record(
        self, owner: Owner, notification: Notification, *, channel: str, origin: RequestOrigin
    ) -> None:
        """Audit a full-content notification before it leaves (no-op for the others);
        raises `AccessAuditUnavailableError` when it cannot be recorded."""
        ...


class Wakeups(Protocol):
    """In-process signals "subscription X changed or has something new"."""

    def wake(self, subscription_id: str) -> None: ...

    def listen(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(subscription_id)`` on every wake."""
        ...

    def changed(self, subscription_id: str) -> None:
        """Its stored state changed (a rotated secret): workers read it again before sending."""
        ...

    def revision(self, subscription_id: str) -> int: ...

    def news(self, subscription_id: str) -> int:
        """A mark to note before reading the feed and to pass to `wait`."""
        ...

    async def wait(self, subscription_id: str, timeout_s: float, *, seen: int) -> bool:
        """Until something is new since the mark ``seen``, or ``timeout_s``; True if woken."""
        ...


class FreshEntries(Protocol):
    """Entries this replica just numbered, with their envelopes, handed to webhook workers."""

    def hand_over(self, entry: FeedEntry, envelope: bytes) -> None: ...

    def after(
        self, subscription_id: str, sequence: int, limit: int
    ) -> list[tuple[FeedEntry, bytes]]: ...

    def head(self, subscription_id: str) -> int | None: ...
