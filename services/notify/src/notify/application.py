"""The notify application: subscription commands and queries, replay, status and resend.

Commands run through the event log's repository (the Subscription aggregate); the subscription
read model is written straight after the append too, so the creator can use it at once. The
matcher (entrypoints.matcher) numbers events into each subscription's feed; the webhook
workers (entrypoints.deliveries) and streams read the feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from uuid import UUID

from clinical.notify.v1 import notify_pb2 as pb
from clinical_platform.eventlog.context import CommandContext
from clinical_platform.eventlog.writer import AppendResult
from clinical_platform.validation import FieldViolation
from notify.adapters.documents import Delivery, FeedEntry, NotifyDocuments
from notify.adapters.rendering import NotificationRenderer
from notify.adapters.secrets import TransitSecretBox, new_webhook_secret
from notify.adapters.webhooks import WebhookSender
from notify.domain.errors import (
    HandshakeFailed,
    InvalidSubscription,
    NoSuchNotification,
    NothingToResend,
    NotTheOwner,
    SubscriptionDeleted,
    SubscriptionNotFound,
)
from notify.domain.policy import Refusal, creation_refusal, scoped_filter
from notify.domain.subscription import (
    Content,
    Filter,
    Owner,
    Subscription,
    SubscriptionView,
    Topic,
    WebhookSecret,
    webhook_url_problem,
)

Clock = Callable[[], datetime]
_SUBSCRIPTION_IDS = uuid.UUID("7d0c2b9e-3f3a-4f7e-9c55-1a0e6f3b8d42")


def subscription_id_for(subject: str, request_id: str) -> UUID:
    """The id a CreateSubscription creates: a retry by the same caller lands on it again."""
    return uuid.uuid5(_SUBSCRIPTION_IDS, f"{subject}\n{request_id}")


def utc_now() -> datetime:
    return datetime.now(UTC)


class SubscriptionRepository(Protocol):
    """The kernel's AggregateRepository[Subscription]."""

    async def get(self, aggregate_id: UUID) -> Subscription | None: ...

    async def execute(
        self,
        aggregate_id: UUID,
        context: CommandContext,
        command: Callable[[Subscription | None], Subscription],
        *,
        expected_version: int | None = None,
    ) -> AppendResult: ...


class Wakeups:
    """In-process signals "subscription X has something new" for streams and webhook workers.

    Another replica's changes are not signalled: waiters also poll, at the configured interval.
    """

    def __init__(self) -> None:
        self._events: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    def wake(self, subscription_id: str) -> None:
        event = self._events.pop(subscription_id, None)
        if event is not None:
            event.set()

    async def wait(self, subscription_id: str, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._events[subscription_id].wait(), timeout_s)


@dataclass(frozen=True)
class CreateSubscription:
    topics: Sequence[Topic]
    event_filter: Filter
    content: Content
    webhook_url: str


@dataclass(frozen=True)
class Created:
    subscription: SubscriptionView
    webhook_secret: str


@dataclass(frozen=True)
class Rotated:
    webhook_secret: str
    previous_expires_at: datetime
    version: int


@dataclass(frozen=True)
class Status:
    delivery: Delivery
    head: int
    has_webhook: bool


class AccessRefused(Exception):  # noqa: N818 - a refusal, carried to PERMISSION_DENIED
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.value)


class NotifyApp:
    """Creates and manages subscriptions; replays and re-sends their notifications."""

    def __init__(
        self,
        subscriptions: SubscriptionRepository,
        documents: NotifyDocuments,
        *,
        renderer: NotificationRenderer,
        secrets: TransitSecretBox,
        sender: WebhookSender,
        wakeups: Wakeups,
        allow_http: bool,
        secret_overlap: timedelta,
        clock: Clock = utc_now,
    ) -> None:
        self._subscriptions = subscriptions
        self._documents = documents
        self._renderer = renderer
        self._secrets = secrets
        self._sender = sender
        self._wakeups = wakeups
        self._allow_http = allow_http
        self._overlap = secret_overlap
        self._clock = clock

    @property
    def wakeups(self) -> Wakeups:
        return self._wakeups

    async def create(
        self, command: CreateSubscription, owner: Owner, context: CommandContext
    ) -> Created:
        """Handshake with the webhook (if any), then record the subscription."""
        if refusal := creation_refusal(owner, command.event_filter):
            raise AccessRefused(refusal)
        if command.webhook_url and (
            problem := webhook_url_problem(command.webhook_url, allow_http=self._allow_http)
        ):
            raise InvalidSubscription([FieldViolation("webhook.url", problem)])
        subscription_id = subscription_id_for(owner.subject, context.request_id)
        existing = await self._subscriptions.get(subscription_id)
        if existing is not None:  # a retry: same subscription, same secret
            return await self._created(existing, await self._current_secret(existing))
        secret = ""
        sealed = None
        if command.webhook_url:
            secret = new_webhook_secret()
            outcome = await self._sender.handshake(
                command.webhook_url, str(subscription_id), secret
            )
            if outcome.error is not None:
                raise HandshakeFailed(outcome.error)
            sealed = WebhookSecret(await self._secrets.seal(secret))

        def create(current: Subscription | None) -> Subscription:
            if current is not None:
                return current
            return Subscription.create(
                subscription_id=subscription_id, owner=owner, topics=command.topics,
                event_filter=scoped_filter(owner, command.event_filter),
                content=command.content, webhook_url=command.webhook_url, secret=sealed,
                at=self._clock(),
            )  # fmt: skip

        await self._subscriptions.execute(subscription_id, context, create)
        subscription = await self._subscriptions.get(subscription_id)
        if subscription is None:  # pragma: no cover - just appended
            raise SubscriptionNotFound(subscription_id)
        return await self._created(subscription, secret)

    async def _created(self, subscription: Subscription, secret: str) -> Created:
        await self._documents.save_subscription(subscription, subscription.version)
        view = await self._documents.subscription(str(subscription.id))
        if view is None:  # pragma: no cover - just written
            raise SubscriptionNotFound(subscription.id)
        return Created(view, secret)

    async def _current_secret(self, subscription: Subscription) -> str:
        if not subscription.secrets:
            return ""
        return await self._secrets.open(subscription.secrets[0].ciphertext)

    async def get(self, subscription_id: UUID, caller: str) -> SubscriptionView:
        """The caller's live subscription; NOT_FOUND / PERMISSION_DENIED otherwise."""
        view = await self._documents.subscription(str(subscription_id))
        if view is None:
            subscription = await self._subscriptions.get(subscription_id)
            if subscription is None:
                raise SubscriptionNotFound(subscription_id)
            await self._documents.save_subscription(subscription, subscription.version)
            view = await self._documents.subscription(str(subscription_id))
            if view is None:  # pragma: no cover - just written
                raise SubscriptionNotFound(subscription_id)
        if view.owner.subject != caller:
            raise NotTheOwner
        if view.deleted_at is not None:
            raise SubscriptionDeleted(subscription_id)
        return view

    async def list_subscriptions(
        self, caller: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[SubscriptionView]:
        return await self._documents.subscriptions_of(caller, after=after, limit=limit)

    async def delete(self, subscription_id: UUID, caller: str, context: CommandContext) -> int:
        await self.get(subscription_id, caller)

        def delete(current: Subscription | None) -> Subscription:
            if current is None:
                raise SubscriptionNotFound(subscription_id)
            current.delete(by=caller, at=self._clock())
            return current

        result = await self._subscriptions.execute(subscription_id, context, delete)
        await self._refresh(subscription_id)
        self._wakeups.wake(str(subscription_id))
        return result.version

    async def rotate_secret(
        self, subscription_id: UUID, caller: str, context: CommandContext
    ) -> Rotated:
        await self.get(subscription_id, caller)
        secret = new_webhook_secret()
        sealed = WebhookSecret(await self._secrets.seal(secret))
        now = self._clock()

        def rotate(current: Subscription | None) -> Subscription:
            if current is None:
                raise SubscriptionNotFound(subscription_id)
            current.rotate_secret(sealed, at=now, overlap=self._overlap)
            return current

        result = await self._subscriptions.execute(subscription_id, context, rotate)
        subscription = await self._refresh(subscription_id)
        if subscription.secrets[0].ciphertext != sealed.ciphertext:  # a retried request
            secret = await self._current_secret(subscription)
        expires = subscription.secrets[1].valid_until if len(subscription.secrets) > 1 else now
        return Rotated(secret, expires or now, result.version)

    async def _refresh(self, subscription_id: UUID) -> Subscription:
        subscription = await self._subscriptions.get(subscription_id)
        if subscription is None:  # pragma: no cover - just appended
            raise SubscriptionNotFound(subscription_id)
        await self._documents.save_subscription(subscription, subscription.version)
        return subscription

    async def list_events(
        self, view: SubscriptionView, *, since: int, limit: int
    ) -> tuple[list[pb.Notification], int]:
        """Notifications after ``since`` of a subscription the caller was allowed to `get`."""
        entries = await self._documents.entries(view.subscription_id, after=since, limit=limit)
        head = await self._documents.head(view.subscription_id)
        return await self._renderer.render_all(view, entries), head

    async def render(self, view: SubscriptionView, entry: FeedEntry) -> pb.Notification:
        return await self._renderer.render(view, entry)

    async def render_all(
        self, view: SubscriptionView, entries: Sequence[FeedEntry]
    ) -> list[pb.Notification]:
        return await self._renderer.render_all(view, entries)

    async def status(self, subscription_id: UUID, caller: str) -> Status:
        view = await self.get(subscription_id, caller)
        delivery = await self._documents.delivery(view.subscription_id)
        head = await self._documents.head(view.subscription_id)
        return Status(delivery, head, bool(view.webhook_url))

    async def resend(self, subscription_id: UUID, caller: str, sequence: int | None) -> int:
        """Queue one delivered notification again, or every dead-lettered one; returns how
        many. Either way a stopped webhook starts delivering again."""
        view = await self.get(subscription_id, caller)
        if not view.webhook_url:
            raise NothingToResend("the subscription has no webhook; replay it with ListEvents")
        key = view.subscription_id
        delivery = await self._documents.delivery(key)
        if sequence is None:
            queued = len(delivery.dead_letters)
            await self._documents.queue_resend(key, [])
        elif sequence in delivery.dead_letters:
            queued = 1
            await self._documents.queue_resend(key, [])
        else:
            if sequence < 1 or sequence > await self._documents.head(key):
                raise NoSuchNotification(sequence)
            if sequence > delivery.cursor:
                raise NothingToResend(
                    f"notification {sequence} has not been delivered yet; it is on its way"
                )
            queued = 1
            await self._documents.queue_resend(key, [sequence])
        self._wakeups.wake(key)
        return queued
