"""The webhook worker against fakes of its ports: what it signs with, and when it re-reads."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from clinical_testing.waiting import eventually

from clinical_platform.access.records import RequestOrigin
from notify.adapters.wakeups import FreshEntries, InProcessWakeups
from notify.domain.backoff import RetrySchedule
from notify.domain.delivery import Delivery
from notify.domain.feed import FeedEntry
from notify.domain.notification import Notification
from notify.domain.subscription import (
    Content,
    Filter,
    Owner,
    Subscription,
    SubscriptionView,
    Topic,
)
from notify.domain.webhook import WebhookSecret
from notify.entrypoints.deliveries import DeliveryParts, WebhookDeliveries
from notify.ports import Outcome

pytestmark = pytest.mark.unit
SUBSCRIPTION = "5b1f0f0e-8a53-4c3e-9a59-3f1f0d6c9b10"
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _view(*secrets: WebhookSecret) -> SubscriptionView:
    return SubscriptionView(
        subscription_id=SUBSCRIPTION, owner=Owner("dr-a", ("clinician",)),
        topics=(Topic.ORDER_SIGNED,), event_filter=Filter(), content=Content.ID_ONLY,
        webhook_url="https://hooks.example/x", secrets=secrets, created_at=NOW, version=1,
    )  # fmt: skip


@dataclass
class FakeViews:
    """The subscription read model: one subscription (and any others put in ``more``)."""

    view: SubscriptionView
    more: dict[str, SubscriptionView] = field(default_factory=dict)

    async def subscription(self, subscription_id: str) -> SubscriptionView | None:
        return self.more.get(subscription_id, self.view)

    async def save(self, subscription: Subscription) -> None:
        raise NotImplementedError

    async def live_subscriptions(self) -> list[tuple[SubscriptionView, int | None]]:
        return [(self.view, 0)]

    async def set_created_timestamp(self, subscription_id: str, timestamp_ms: int) -> None:
        raise NotImplementedError

    async def set_deleted_timestamp(self, subscription_id: str, timestamp_ms: int) -> None:
        raise NotImplementedError


@dataclass
class FakeStore:
    """The feed, the delivery progress, rendering, secrets and disclosures, in memory."""

    feed: list[FeedEntry] = field(default_factory=list)
    progress: dict[str, Delivery] = field(default_factory=dict)

    async def append(self, entry: FeedEntry) -> bool:
        self.feed.append(entry)
        return True

    async def entries(self, subscription_id: str, *, after: int, limit: int) -> list[FeedEntry]:
        mine = [e for e in self.feed if e.subscription_id == subscription_id]
        return [e for e in mine if e.sequence > after][:limit]

    async def head(self, subscription_id: str) -> int:
        return len([e for e in self.feed if e.subscription_id == subscription_id])

    async def delivery(self, subscription_id: str) -> Delivery:
        progress = self.progress.get(subscription_id, Delivery())
        return replace(progress, resend=list(progress.resend))

    async def save(
        self, subscription_id: str, delivery: Delivery, *, sent: Sequence[int] = ()
    ) -> None:
        self.progress[subscription_id] = replace(delivery)

    async def dead_letter(self, subscription_id: str, delivery: Delivery, sequence: int) -> None:
        self.progress[subscription_id] = replace(delivery)

    async def queue_resend(self, subscription_id: str, sequences: Sequence[int]) -> None:
        raise NotImplementedError

    async def render_all(
        self,
        subscription: SubscriptionView,
        entries: Sequence[FeedEntry],
        envelopes: Mapping[str, bytes | None] | None = None,
    ) -> list[Notification]:
        return [
            Notification(e.subscription_id, e.sequence, e.topic.value, e.occurred_at)
            for e in entries
        ]

    async def seal(self, secret: str) -> str:
        return f"sealed:{secret}"

    async def open(self, ciphertext: str) -> str:
        return ciphertext.removeprefix("sealed:")

    async def record(
        self, owner: Owner, notification: Notification, *, channel: str, origin: RequestOrigin
    ) -> None:
        return None


@dataclass
class RecordingSender:
    signed_with: asyncio.Queue[list[str]] = field(default_factory=asyncio.Queue)

    async def handshake(self, url: str, subscription_id: str, secret: str) -> Outcome:
        return Outcome(None)

    async def post(
        self, url: str, message_id: str, body: str, secrets: Sequence[str],
        *, content_type: str = "application/json",
    ) -> Outcome:  # fmt: skip
        self.signed_with.put_nowait(list(secrets))
        return Outcome(None)


def _entry(sequence: int) -> FeedEntry:
    return FeedEntry(SUBSCRIPTION, sequence, f"event-{sequence}", Topic.ORDER_SIGNED,
                     "patient", f"order-{sequence}", "", 1, NOW)  # fmt: skip


def _deliveries(  # noqa: PLR0917 - the ports a test replaces
    views: FakeViews,
    store: FakeStore,
    sender: RecordingSender,
    wakeups: InProcessWakeups,
    fresh: FreshEntries,
    workers: int = 4,
) -> WebhookDeliveries:
    parts = DeliveryParts(views, store, store, store, store, sender, store, wakeups, fresh)
    schedule = RetrySchedule(timedelta(seconds=1), timedelta(seconds=2), timedelta(seconds=3))
    # A poll interval far longer than a test: only a signal can make the worker read again.
    return WebhookDeliveries(
        parts, schedule=schedule, poll_interval_s=60.0, workers=workers, clock=lambda: NOW
    )


async def _next_post(sender: RecordingSender) -> list[str]:
    return await asyncio.wait_for(sender.signed_with.get(), timeout=5)


async def test_a_rotation_made_on_this_replica_signs_the_very_next_post_with_both_secrets() -> None:
    views, store = FakeViews(_view(WebhookSecret("sealed:old"))), FakeStore()
    sender, wakeups = RecordingSender(), InProcessWakeups()
    deliveries = _deliveries(views, store, sender, wakeups, FreshEntries())
    store.feed.append(_entry(1))
    deliveries.track(views.view)
    try:
        first = await _next_post(sender)

        views.view = _view(
            WebhookSecret("sealed:new"), WebhookSecret("sealed:old", NOW + timedelta(days=1))
        )  # what RotateWebhookSecret wrote to the read model ...
        wakeups.changed(SUBSCRIPTION)  # ... and signalled before answering
        store.feed.append(_entry(2))
        wakeups.wake(SUBSCRIPTION)
        second = await _next_post(sender)
    finally:
        await deliveries.stop()

    assert first == ["old"]
    assert second == ["new", "old"]


async def test_a_notification_handed_over_by_the_matcher_is_posted_without_reading_the_feed() -> (
    None
):
    views, store = FakeViews(_view(WebhookSecret("sealed:s"))), FakeStore()
    sender, wakeups, fresh = RecordingSender(), InProcessWakeups(), FreshEntries()
    deliveries = _deliveries(views, store, sender, wakeups, fresh)
    store.feed.append(_entry(1))
    deliveries.track(views.view)
    try:
        await _next_post(sender)  # the first of an interval comes from the feed as stored
        fresh.hand_over(_entry(2), b"envelope-2")  # numbered, not (yet) readable in the feed
        wakeups.wake(SUBSCRIPTION)

        assert await _next_post(sender) == ["s"]
    finally:
        await deliveries.stop()


def test_handed_over_entries_come_out_gapless_from_the_next_number() -> None:
    fresh = FreshEntries(kept_per_subscription=3)
    for sequence in (1, 2, 3, 4):
        fresh.hand_over(_entry(sequence), b"")

    assert [entry.sequence for entry, _ in fresh.after(SUBSCRIPTION, 2, limit=10)] == [3, 4]
    assert fresh.after(SUBSCRIPTION, 0, limit=10) == []  # 1 was let go: read the feed
    assert fresh.head(SUBSCRIPTION) == 4


async def test_a_revoked_subscription_posts_nothing_more_and_leaves_the_pool() -> None:
    views, store = FakeViews(_view(WebhookSecret("sealed:s"))), FakeStore()
    sender, wakeups = RecordingSender(), InProcessWakeups()
    deliveries = _deliveries(views, store, sender, wakeups, FreshEntries())
    store.feed.append(_entry(1))
    deliveries.track(views.view)
    try:
        await _next_post(sender)
        views.view = replace(views.view, revoked_at=NOW)  # what RevokeSubscription wrote ...
        wakeups.changed(SUBSCRIPTION)  # ... and signalled before answering
        store.feed.append(_entry(2))
        wakeups.wake(SUBSCRIPTION)

        assert await eventually(lambda: not deliveries.serves(SUBSCRIPTION))
    finally:
        await deliveries.stop()
    assert sender.signed_with.empty()  # notification 2 was never posted


async def test_an_expired_subscription_is_not_served() -> None:
    expired = replace(_view(WebhookSecret("sealed:s")), expires_at=NOW)
    views, store = FakeViews(expired), FakeStore()
    sender, wakeups = RecordingSender(), InProcessWakeups()
    deliveries = _deliveries(views, store, sender, wakeups, FreshEntries())
    store.feed.append(_entry(1))
    deliveries.track(expired)
    try:
        assert await eventually(lambda: not deliveries.serves(SUBSCRIPTION))
    finally:
        await deliveries.stop()
    assert sender.signed_with.empty()


@dataclass
class GatedSender(RecordingSender):
    """Holds every POST until released, counting how many are in flight at once."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0
    most_in_flight: int = 0
    posted: list[str] = field(default_factory=list)

    async def post(
        self, url: str, message_id: str, body: str, secrets: Sequence[str],
        *, content_type: str = "application/json",
    ) -> Outcome:  # fmt: skip
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate.wait()
        finally:
            self.in_flight -= 1
        self.posted.append(message_id)
        return Outcome(None)


async def test_many_subscriptions_share_a_bounded_pool_of_workers() -> None:
    base = _view(WebhookSecret("sealed:s"))
    keys = [str(uuid.uuid4()) for _ in range(12)]
    views = FakeViews(base, {key: replace(base, subscription_id=key) for key in keys})
    store, sender, wakeups = FakeStore(), GatedSender(), InProcessWakeups()
    for key in keys:
        store.feed.append(replace(_entry(1), subscription_id=key))
    deliveries = _deliveries(views, store, sender, wakeups, FreshEntries(), workers=3)
    for key in keys:
        deliveries.track(views.more[key])
    try:
        assert await eventually(lambda: sender.in_flight == 3)
        sender.gate.set()
        assert await eventually(lambda: len(sender.posted) == len(keys))
    finally:
        await deliveries.stop()
    assert sender.most_in_flight == 3
