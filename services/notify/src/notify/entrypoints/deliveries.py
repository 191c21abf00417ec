"""Webhook delivery: a bounded pool of workers takes turns at the webhook subscriptions this
replica owns (`turns.TurnPool`), not a task per subscription.

A subscription's notifications go one at a time, in sequence order (so a patient's events
arrive in log order), each until the endpoint answers 2xx. A failure is retried with
exponential backoff and jitter (the subscription waits without holding a worker); once a
notification has failed for the whole horizon it is dead-lettered and the webhook turned
off, until Resend turns it back on. Before every POST the subscription's grant is checked
again: an expired or revoked subscription posts nothing more and leaves the pool. A slow
endpoint holds one worker for at most the POST timeout; a turn posts at most a batch before
the subscription goes to the back of the queue.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field

from pymongo.errors import ConnectionFailure

from clinical_platform.access.outbox import AccessAuditUnavailableError
from clinical_platform.access.records import RequestOrigin
from clinical_platform.observability.webhooks import (
    record_outcome,
    webhook_attempted,
    webhook_backlog,
    webhook_backlog_gone,
    webhook_dead_lettered,
    webhook_post,
)
from clinical_platform.reads import Clock, utc_now
from clinical_platform.security.errors import KeyServiceUnavailableError
from notify.domain.backoff import RetrySchedule
from notify.domain.delivery import Delivery
from notify.domain.notification import Notification
from notify.domain.subscription import SubscriptionView
from notify.entrypoints.messages import webhook_payload
from notify.entrypoints.progress import BatchedProgress
from notify.entrypoints.turns import TurnPool
from notify.ports import (
    DeliveryProgress,
    Disclosures,
    Feed,
    FreshEntries,
    Renderer,
    SecretBox,
    SubscriptionViews,
    Wakeups,
    WebhookSender,
)

logger = logging.getLogger(__name__)
# Also the access audit: a full-content notification waits until its disclosure is recorded.
_TRANSIENT = (ConnectionFailure, KeyServiceUnavailableError, AccessAuditUnavailableError)
# Notifications rendered per feed read, and how often a busy worker saves its progress.
_BATCH = 50
_SAVE_EVERY_S = 0.25


@dataclass(frozen=True)
class DeliveryParts:
    """What the workers read, write and send with."""

    subscriptions: SubscriptionViews
    feed: Feed
    progress: DeliveryProgress
    renderer: Renderer
    secrets: SecretBox
    sender: WebhookSender
    disclosures: Disclosures
    wakeups: Wakeups
    fresh: FreshEntries


class _Posted:
    """A notification was attempted: go on with the next."""


_POSTED = _Posted()


@dataclass
class _Worked:
    """What a subscription's turns keep in memory between them (one turn at a time)."""

    view: SubscriptionView
    revision: int
    delivery: Delivery
    refresh_at: float  # monotonic: read the subscription and its progress again then
    pending: deque[Notification] = field(default_factory=deque)
    read_stored: bool = True  # once an interval, whatever was handed over: the feed as stored


class WebhookDeliveries:
    """Serves the webhook subscriptions the matcher tells it about, with a bounded pool."""

    def __init__(
        self,
        parts: DeliveryParts,
        *,
        schedule: RetrySchedule,
        poll_interval_s: float,
        workers: int = 32,
        clock: Clock = utc_now,
    ) -> None:
        self._parts = parts
        self._schedule = schedule
        self._poll_s = poll_interval_s
        self._clock = clock
        self._pool = TurnPool(self._turn, size=workers, name="webhook worker")
        self._worked: dict[str, _Worked] = {}
        self._saver = BatchedProgress(parts.progress, save_every_s=_SAVE_EVERY_S)
        # Woken by the matcher (new notifications) and by commands (a changed subscription).
        parts.wakeups.listen(self._pool.ready)

    def track(self, view: SubscriptionView) -> None:
        """Deliver this subscription's webhook from now on (no-op without one, or if served)."""
        key = view.subscription_id
        if not view.webhook_url or view.deleted_at is not None or view.revoked_at is not None:
            return
        if key not in self._pool:
            self._pool.add(key)

    def serves(self, subscription_id: str) -> bool:
        """Whether the subscription's webhook is delivered (by this replica)."""
        return subscription_id in self._pool

    def forget(self, subscription_id: str) -> None:
        """Stop delivering the subscription's webhook (deleted or revoked)."""
        self._pool.remove(subscription_id)
        self._worked.pop(subscription_id, None)
        webhook_backlog_gone(subscription_id)

    async def stop(self) -> None:
        """Stop every worker."""
        for subscription_id in self._pool.keys:
            webhook_backlog_gone(subscription_id)
        await self._pool.stop()
        self._worked.clear()

    async def _turn(self, subscription_id: str) -> float | None:
        try:
            return await self._deliver_a_batch(subscription_id)
        except _TRANSIENT as transient:
            logger.warning(
                "read model or key service unreachable; retrying",
                extra={"subscription": subscription_id, "error": type(transient).__name__},
            )
        except Exception:
            logger.exception("webhook delivery failed; trying again",
                             extra={"subscription": subscription_id})  # fmt: skip
        self._worked.pop(subscription_id, None)  # read everything again next time
        return self._poll_s

    async def _deliver_a_batch(self, subscription_id: str) -> float | None:
        """Up to a batch of POSTs; seconds until the subscription's next turn, or None when
        it delivers nothing more (deleted, revoked, expired, no webhook).

        Only one turn of a subscription runs at a time, so its progress is kept in memory in
        between and only new feed entries are read (a batch at a time). What others change
        (Resend, delete, revoke, renew, a rotated secret) is read again once an interval, and
        at once when this replica made the change (`Wakeups.changed`).
        """
        worked = await self._worked_on(subscription_id)
        if worked is None:
            self.forget(subscription_id)
            return None
        try:
            for _ in range(_BATCH):
                pause = await self._post_next(subscription_id, worked)
                if not isinstance(pause, _Posted):
                    return pause
            return 0.0  # more to do: after the others' turns
        finally:
            await self._saver.flush(subscription_id, worked.delivery)

    async def _post_next(self, subscription_id: str, worked: _Worked) -> float | _Posted | None:
        """Attempt the next notification (`_POSTED`), or say why not: seconds to pause, or
        None when the subscription delivers nothing more."""
        parts, wakeups = self._parts, self._parts.wakeups
        view, delivery = worked.view, worked.delivery
        now = self._clock()
        if subscription_id not in self._pool or view.lapse(now) is not None:
            self.forget(subscription_id)  # forgotten, or the grant ended since it was read
            return None
        if wakeups.revision(subscription_id) != worked.revision:
            return 0.0  # read the changed subscription before the next POST
        target = delivery.next_target()
        webhook_backlog(subscription_id, target, parts.fresh.head(subscription_id))
        idle = max(0.0, worked.refresh_at - time.monotonic())
        if target is None:
            return idle
        if delivery.next_attempt_at is not None and now < delivery.next_attempt_at:
            return min((delivery.next_attempt_at - now).total_seconds(), idle)
        if not worked.pending or worked.pending[0].sequence != target:
            batch = await self._next_batch(view, target, worked.read_stored)
            worked.pending, worked.read_stored = deque(batch), False
            if not worked.pending or worked.pending[0].sequence != target:
                return idle  # nothing numbered that far yet: a wake brings it
        if await self._attempt(view, delivery, worked.pending[0]):
            worked.pending.popleft()
        return _POSTED

    async def _worked_on(self, subscription_id: str) -> _Worked | None:
        """The subscription and its progress: kept from the last turn, or read again when the
        interval is over or it changed on this replica. None when it delivers nothing more."""
        parts = self._parts
        revision = parts.wakeups.revision(subscription_id)
        worked = self._worked.get(subscription_id)
        if (
            worked is not None
            and worked.revision == revision
            and time.monotonic() < worked.refresh_at
        ):
            return worked
        view = await parts.subscriptions.subscription(subscription_id)
        if (
            view is None or view.deleted_at is not None or not view.webhook_url
            or view.lapse(self._clock()) is not None
        ):  # fmt: skip
            return None
        delivery = await parts.progress.delivery(subscription_id)
        worked = _Worked(view, revision, delivery, time.monotonic() + self._poll_s)
        self._worked[subscription_id] = worked
        return worked

    async def _next_batch(
        self, view: SubscriptionView, target: int, read_stored: bool
    ) -> list[Notification]:
        """Notifications from ``target`` on: as the matcher handed them over, else from the
        feed, unless the matcher has numbered nothing that far (nothing to read)."""
        parts, key = self._parts, view.subscription_id
        fresh = parts.fresh.after(key, target - 1, _BATCH)
        if fresh:
            envelopes = {entry.event_id: envelope for entry, envelope in fresh}
            return await parts.renderer.render_all(view, [e for e, _ in fresh], envelopes)
        head = parts.fresh.head(key)
        if not read_stored and head is not None and head < target:
            return []
        entries = await parts.feed.entries(key, after=target - 1, limit=_BATCH)
        return await parts.renderer.render_all(view, entries)

    async def _attempt(
        self, view: SubscriptionView, delivery: Delivery, notification: Notification
    ) -> bool:
        """POST one notification and record the outcome; True when it was delivered.

        Successes are saved in batches (`BatchedProgress`): after a crash the last few are posted
        again with the same webhook-ids, which receivers drop. Failures are saved at once.
        """
        parts, key = self._parts, view.subscription_id
        now = self._clock()
        origin = RequestOrigin(request_id=notification.notification_id)
        await parts.disclosures.record(
            view.owner, notification, channel="WebhookDelivery", origin=origin
        )
        body, content_type = webhook_payload(view, notification, now)
        secrets = [await parts.secrets.open(c) for c in view.signing_secrets(now)]
        # A client span under the one that matched the event; the POST carries its traceparent.
        with webhook_post(notification.event_id) as span:
            started = time.perf_counter()
            outcome = await parts.sender.post(
                view.webhook_url, notification.notification_id, body, secrets,
                content_type=content_type,
            )  # fmt: skip
            record_outcome(span, outcome.error)
        webhook_attempted(
            notification.event_id,
            delivered=outcome.error is None,
            seconds=time.perf_counter() - started,
        )
        now = self._clock()
        sequence = notification.sequence
        if outcome.error is None:
            delivery.succeeded(sequence, now)
            await self._saver.delivered(key, delivery, sequence)
            return True
        await self._saver.flush(key, delivery)
        if delivery.failed(sequence, outcome.error, now, self._schedule):
            where = {"subscription": key, "sequence": sequence}
            logger.warning("webhook retries ran out; notification dead-lettered", extra=where)
            webhook_dead_lettered()
            await parts.progress.dead_letter(key, delivery, sequence)
        else:
            await parts.progress.save(key, delivery)
        return False
