"""The notify application: subscription commands and queries, replay, status and resend.

Commands run through the Subscriptions port (the event log's repository, with the read model
written through). The matcher (entrypoints.matcher) numbers events into each subscription's
feed; the webhook workers (entrypoints.deliveries) and streams read the feed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from clinical_platform.eventlog.context import CommandContext
from clinical_platform.reads import Clock, utc_now
from clinical_platform.validation import FieldViolation
from notify.domain.delivery import Delivery
from notify.domain.errors import (
    HandshakeFailed,
    InvalidSubscription,
    NoSuchNotification,
    NothingToResend,
    NotTheOwner,
    QuotaExceeded,
    SubscriptionDeleted,
    SubscriptionNotFound,
)
from notify.domain.subscription import (
    DEFAULT_LIFETIME,
    Content,
    Filter,
    Owner,
    PayloadFormat,
    Subscription,
    SubscriptionView,
    Topic,
)
from notify.domain.webhook import WebhookSecret, new_webhook_secret, webhook_url_problem
from notify.grants import refuse_if_lapsed
from notify.ports import (
    DeliveryProgress,
    Feed,
    SecretBox,
    Subscriptions,
    Wakeups,
    WebhookSender,
)

_SUBSCRIPTION_IDS = uuid.UUID("7d0c2b9e-3f3a-4f7e-9c55-1a0e6f3b8d42")

logger = logging.getLogger(__name__)


def subscription_id_for(subject: str, request_id: str) -> UUID:
    """The id a CreateSubscription creates: a retry by the same caller lands on it again."""
    return uuid.uuid5(_SUBSCRIPTION_IDS, f"{subject}\n{request_id}")


@dataclass(frozen=True)
class CreateSubscription:
    """The owner's filter must already be authorized (`notify.policy.authorized_filter`)."""

    topics: Sequence[Topic]
    event_filter: Filter
    content: Content
    webhook_url: str
    payload_format: PayloadFormat = PayloadFormat.NATIVE


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


class NotifyApp:
    """Creates and manages subscriptions; replays and re-sends their notifications."""

    def __init__(
        self,
        subscriptions: Subscriptions,
        feed: Feed,
        progress: DeliveryProgress,
        *,
        secrets: SecretBox,
        sender: WebhookSender,
        wakeups: Wakeups,
        allow_http: bool,
        secret_overlap: timedelta,
        lifetime: timedelta = DEFAULT_LIFETIME,
        quota: Callable[[Owner], int] = lambda _: 20,
        clock: Clock = utc_now,
    ) -> None:
        self._subscriptions = subscriptions
        self._feed = feed
        self._progress = progress
        self._secrets = secrets
        self._sender = sender
        self._wakeups = wakeups
        self._allow_http = allow_http
        self._overlap = secret_overlap
        self._lifetime = lifetime
        self._quota = quota
        self._clock = clock

    async def create(
        self, command: CreateSubscription, owner: Owner, context: CommandContext
    ) -> Created:
        """Handshake with the webhook (if any), then record the subscription; a retry of the
        same request returns the same subscription and secret."""
        if command.webhook_url and (
            problem := webhook_url_problem(command.webhook_url, allow_http=self._allow_http)
        ):
            raise InvalidSubscription([FieldViolation("webhook.url", problem)])
        subscription_id = subscription_id_for(owner.subject, context.request_id)
        existing = await self._subscriptions.get(subscription_id)
        if existing is not None:  # a retry: same subscription, same secret
            return Created(await self._view(subscription_id), await self._current_secret(existing))
        # Counted before the handshake: a caller over quota never makes us contact anyone.
        # Concurrent creations may pass together; the quota bounds an owner, not a race.
        limit = self._quota(owner)
        if await self._subscriptions.active_count(owner.subject, self._clock()) >= limit:
            raise QuotaExceeded(limit)
        secret = ""
        sealed = None
        if command.webhook_url:
            secret = new_webhook_secret()
            outcome = await self._sender.handshake(
                command.webhook_url, str(subscription_id), secret
            )
            if outcome.error is not None:
                # The reason stays in the logs (with the subscription, never the URL).
                where = {"subscription": str(subscription_id), "reason": outcome.error}
                logger.info("webhook handshake failed", extra=where)
                raise HandshakeFailed(outcome.error)
            sealed = WebhookSecret(await self._secrets.seal(secret))

        def create(current: Subscription | None) -> Subscription:
            if current is not None:
                return current
            return Subscription.create(
                subscription_id=subscription_id, owner=owner, topics=command.topics,
                event_filter=command.event_filter, content=command.content,
                webhook_url=command.webhook_url, secret=sealed, at=self._clock(),
                lifetime=self._lifetime, payload_format=command.payload_format,
            )  # fmt: skip

        await self._subscriptions.execute(subscription_id, context, create)
        return Created(await self._view(subscription_id), secret)

    async def _view(self, subscription_id: UUID) -> SubscriptionView:
        view = await self._subscriptions.view(subscription_id)
        if view is None:
            raise SubscriptionNotFound(subscription_id)
        return view

    async def _current_secret(self, subscription: Subscription) -> str:
        if not subscription.secrets:
            return ""
        return await self._secrets.open(subscription.secrets[0].ciphertext)

    async def get(self, subscription_id: UUID, caller: str) -> SubscriptionView:
        """The caller's subscription unless deleted (expired or revoked too: its state shows
        it); NOT_FOUND / PERMISSION_DENIED otherwise."""
        view = await self._view(subscription_id)
        if view.owner.subject != caller:
            raise NotTheOwner
        if view.deleted_at is not None:
            raise SubscriptionDeleted(subscription_id)
        return view

    async def active(self, subscription_id: UUID, caller: str) -> SubscriptionView:
        """The caller's subscription while its grant holds; SubscriptionExpired or
        SubscriptionRevoked once it does not (nothing more is delivered)."""
        view = await self.get(subscription_id, caller)
        refuse_if_lapsed(view, self._clock())
        return view

    async def list_subscriptions(
        self, caller: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[SubscriptionView]:
        """The caller's live subscriptions, oldest first, after the ``after`` position."""
        return await self._subscriptions.views_of(caller, after=after, limit=limit)

    async def delete(self, subscription_id: UUID, caller: str, context: CommandContext) -> int:
        """Delete the caller's subscription (matching and delivery stop); its new version."""
        await self.get(subscription_id, caller)

        def delete(current: Subscription | None) -> Subscription:
            if current is None:
                raise SubscriptionNotFound(subscription_id)
            current.delete(by=caller, at=self._clock())
            return current

        executed = await self._subscriptions.execute(subscription_id, context, delete)
        self._wakeups.changed(str(subscription_id))
        return executed.version

    async def rotate_secret(
        self, subscription_id: UUID, caller: str, context: CommandContext
    ) -> Rotated:
        """A new signing secret; the current one keeps signing too for the overlap."""
        await self.active(subscription_id, caller)
        secret = new_webhook_secret()
        sealed = WebhookSecret(await self._secrets.seal(secret))
        now = self._clock()

        def rotate(current: Subscription | None) -> Subscription:
            if current is None:
                raise SubscriptionNotFound(subscription_id)
            current.rotate_secret(sealed, at=now, overlap=self._overlap)
            return current

        executed = await self._subscriptions.execute(subscription_id, context, rotate)
        # The read model holds the new secrets now: the webhook worker must sign with them
        # from its next POST on, not from its next poll.
        self._wakeups.changed(str(subscription_id))
        subscription = executed.subscription
        if subscription.secrets[0].ciphertext != sealed.ciphertext:  # a retried request
            secret = await self._current_secret(subscription)
        expires = subscription.secrets[1].valid_until if len(subscription.secrets) > 1 else now
        return Rotated(secret, expires or now, executed.version)

    async def status(self, subscription_id: UUID, caller: str) -> Status:
        """The caller's subscription's webhook progress and newest number."""
        view = await self.get(subscription_id, caller)
        delivery = await self._progress.delivery(view.subscription_id)
        head = await self._feed.head(view.subscription_id)
        return Status(delivery, head, bool(view.webhook_url))

    async def resend(self, subscription_id: UUID, caller: str, sequence: int | None) -> int:
        """Queue one delivered notification again, or every dead-lettered one; returns how
        many. Either way a stopped webhook starts delivering again."""
        view = await self.active(subscription_id, caller)
        if not view.webhook_url:
            raise NothingToResend("the subscription has no webhook; replay it with ListEvents")
        key = view.subscription_id
        delivery = await self._progress.delivery(key)
        if sequence is None:
            queued = len(delivery.dead_letters)
            await self._progress.queue_resend(key, [])
        elif sequence in delivery.dead_letters:
            queued = 1
            await self._progress.queue_resend(key, [])
        else:
            if sequence < 1 or sequence > await self._feed.head(key):
                raise NoSuchNotification(sequence)
            if sequence > delivery.cursor:
                raise NothingToResend(
                    f"notification {sequence} has not been delivered yet; it is on its way"
                )
            queued = 1
            await self._progress.queue_resend(key, [sequence])
        self._wakeups.wake(key)
        return queued
