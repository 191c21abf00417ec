"""The matcher: reads the orders, results and notify logs and numbers each subscription's events.

One consumer per replica reads every partition of the three topics (its own consumer group,
so replicas do not split them) through the kernel's commit-order merge
(`clinical_platform.consumers.commit_order`): a patient's events come in log order even though
their orders and results live in different partitions and topics, since a result is always
committed after the order it answers.

Subscriptions are read from the same merged stream, so a subscription matches exactly the
events committed after its SubscriptionCreated record and before its SubscriptionDeleted or
SubscriptionRevoked, while its grant has not expired (the record's timestamp before its
expires_at, as its last SubscriptionRenewed left it).
Each replica numbers only the subscriptions whose partition it owns (a single writer per
sequence); the numbers live in the feed, unique per (subscription, event), so a restart that
re-reads records it already handled numbers nothing twice. Numbered notifications are handed
to their listeners (streams, webhook workers) through `Wakeups`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from aiokafka import ConsumerRecord

from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.consumers.commit_order import Handler
from clinical_platform.consumers.failures import count_transient, is_transient
from clinical_platform.security.envelope_cipher import EnvelopeCipher, require_sealed
from clinical_platform.security.errors import PatientForgottenError
from notify.adapters import clinical_events
from notify.adapters.fact_cache import FactCache
from notify.domain.events import ClinicalEvent, matches
from notify.domain.feed import FeedEntry
from notify.domain.subscription import SubscriptionView
from notify.policy import in_scope
from notify.ports import (
    Feed,
    FreshEntries,
    KeptEvents,
    NumberTaken,
    Subscriptions,
    SubscriptionViews,
    Wakeups,
)

logger = logging.getLogger(__name__)

_RETRY_S = 1.0
_T = TypeVar("_T")


@dataclass(frozen=True)
class MatcherParts:
    """What the matcher reads and writes."""

    subscriptions: Subscriptions
    views: SubscriptionViews
    feed: Feed
    kept: KeptEvents
    facts: FactCache
    cipher: EnvelopeCipher
    wakeups: Wakeups
    fresh: FreshEntries
    set_aside: Callable[[ConsumerRecord[bytes, bytes], BaseException], Awaitable[None]]
    """Puts a poison record on its topic's dead-letter topic, with the reason."""


@dataclass
class _Active:
    view: SubscriptionView
    created_ts: int
    next_sequence: int


class Matcher:
    """Numbers matched events into the owned subscriptions' feeds; tells listeners about them."""

    def __init__(
        self,
        parts: MatcherParts,
        *,
        notify_topic: str,
        owns: Callable[[str], bool],
        on_subscription: Callable[[SubscriptionView], None],
        on_deleted: Callable[[str], None],
    ) -> None:
        self._parts = parts
        self._notify_topic = notify_topic
        self._owns = owns
        self._on_subscription = on_subscription
        self._on_deleted = on_deleted
        self._active: dict[str, _Active] = {}
        self.matched = 0

    async def run(self, consume: Callable[[Handler], Awaitable[None]]) -> None:
        """Load the owned subscriptions, then match what ``consume`` hands over (in commit
        order) until cancelled."""
        await self.load()
        await consume(self.handle)

    async def load(self) -> None:
        """The owned live subscriptions and their next numbers, as the last run left them."""
        for view, created_ts in await _retrying(self._parts.views.live_subscriptions):
            if not self._owns(view.subscription_id):
                continue
            self._on_subscription(view)
            if created_ts is not None:
                head = await self._parts.feed.head(view.subscription_id)
                self._active[view.subscription_id] = _Active(view, int(created_ts), head + 1)

    async def handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """Match (or learn from) one record of the merged stream. What fails for a reason that
        passes is retried; poison (undecodable, forged, tampered, malformed) is set aside on
        the dead-letter topic, so one bad record never stops every notification."""
        while True:
            try:
                envelope = Envelope.FromString(record.value or b"")
                # Subscriptions are about no patient; a patient's event in clear is a forgery.
                require_sealed(envelope)
                if record.topic == self._notify_topic:
                    await self._subscription_event(envelope, record.timestamp)
                else:
                    await self._clinical_event(envelope, record.timestamp)
                return
            except Exception as failure:  # DecodeError too: poison
                if not is_transient(failure):
                    await self._parts.set_aside(record, failure)
                    return
                count_transient("notify.matcher", failure)
                logger.warning(
                    "read model or key service unavailable; retrying",
                    extra={**_origin(record), "error": type(failure).__name__},
                )
                await asyncio.sleep(_RETRY_S)

    async def _subscription_event(self, envelope: Envelope, timestamp: int) -> None:
        subscription_id = envelope.aggregate_id
        if not self._owns(subscription_id):
            return
        views = self._parts.views
        subscription = await self._parts.subscriptions.get(UUID(subscription_id))
        if subscription is None:
            return
        await views.save(subscription)
        if envelope.event_type == "SubscriptionCreated":
            await views.set_created_timestamp(subscription_id, timestamp)
        if envelope.event_type == "SubscriptionDeleted" or subscription.deleted:
            await views.set_deleted_timestamp(subscription_id, timestamp)
        if subscription.deleted or subscription.revoked_at is not None:
            self._active.pop(subscription_id, None)
            self._on_deleted(subscription_id)
            self._parts.wakeups.wake(subscription_id)
            return
        view = await views.subscription(subscription_id)
        if view is None:  # pragma: no cover - just written
            return
        active = self._active.get(subscription_id)
        if active is None:
            head = await self._parts.feed.head(subscription_id)
            self._active[subscription_id] = _Active(view, timestamp, head + 1)
        else:
            active.view = view
        self._on_subscription(view)

    async def _clinical_event(self, envelope: Envelope, timestamp: int) -> None:
        plain = None
        facts = self._parts.facts
        if envelope.event_type in clinical_events.READ_PAYLOAD:
            try:
                plain = await self._parts.cipher.decrypted(envelope)
            except PatientForgottenError:
                return  # a forgotten patient's events match nothing
            await facts.learn(plain)
        topic = clinical_events.TOPIC_OF.get(envelope.event_type)
        if topic is None or not self._active:
            return
        event = clinical_events.clinical_event(
            envelope, plain, await facts.of(envelope.aggregate_id)
        )
        if event is None:
            return
        at = datetime.fromtimestamp(timestamp / 1000, UTC)
        interested = [
            active for active in self._active.values()
            if event.topic in active.view.topics and timestamp > active.created_ts
            and active.view.lapse(at) is None and in_scope(active.view.owner, event.patient_id)
            and matches(active.view.event_filter, event)
        ]  # fmt: skip
        if not interested:
            return
        kept = envelope.SerializeToString()
        await self._parts.kept.keep(envelope.event_id, envelope.patient_id, kept)
        # Each subscription's numbers are its own: the subscribers' feed inserts go together,
        # so one more subscriber adds no round trip. All finish before a failure is retried.
        numbered = await asyncio.gather(
            *(self._number(active, event, kept) for active in interested), return_exceptions=True
        )
        for failure in numbered:
            if isinstance(failure, BaseException):
                raise failure

    async def _number(self, active: _Active, event: ClinicalEvent, kept: bytes) -> None:
        subscription_id = active.view.subscription_id
        for _ in range(3):
            entry = FeedEntry(
                subscription_id=subscription_id, sequence=active.next_sequence,
                event_id=event.event_id, topic=event.topic, patient_id=event.patient_id,
                order_id=event.order_id, result_id=event.result_id, version=event.version,
                occurred_at=event.occurred_at,
            )  # fmt: skip
            try:
                if await self._parts.feed.append(entry):
                    active.next_sequence += 1
                    self.matched += 1
                    if active.view.webhook_url:
                        self._parts.fresh.hand_over(entry, kept)
                    self._parts.wakeups.wake(subscription_id)
                return
            except NumberTaken:
                # A writer that still thought it owned the subscription took the number:
                # continue after the newest.
                active.next_sequence = await self._parts.feed.head(subscription_id) + 1
        logger.error("could not number a notification", extra={"subscription": subscription_id})


async def _retrying(call: Callable[[], Awaitable[_T]]) -> _T:
    while True:
        try:
            return await call()
        except Exception as failure:
            if not is_transient(failure):
                raise
            count_transient("notify.matcher", failure)
            await asyncio.sleep(_RETRY_S)


def _origin(record: ConsumerRecord[Any, Any]) -> dict[str, object]:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}
