"""Webhook delivery: one worker per webhook subscription this replica owns.

A worker sends its subscription's notifications one at a time, in sequence order (so a
patient's events arrive in log order), each until the endpoint answers 2xx. A failure is
retried with exponential backoff and jitter; once a notification has failed for the whole
horizon it is dead-lettered and the webhook turned off, until Resend turns it back on.
Workers share nothing but the HTTP client, so a dead or slow endpoint delays only its own
subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass

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
from notify.adapters.webhooks import webhook_body
from notify.domain.backoff import RetrySchedule
from notify.domain.delivery import Delivery
from notify.domain.notification import Notification
from notify.domain.subscription import SubscriptionView
from notify.entrypoints.translate import as_json, notification_message
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


class WebhookDeliveries:
    """Starts and stops the per-subscription workers as the matcher learns of subscriptions."""

    def __init__(
        self,
        parts: DeliveryParts,
        *,
        schedule: RetrySchedule,
        poll_interval_s: float,
        clock: Clock = utc_now,
    ) -> None:
        self._parts = parts
        self._schedule = schedule
        self._poll_s = poll_interval_s
        self._clock = clock
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._saver = _Progress(parts.progress)

    def track(self, view: SubscriptionView) -> None:
        """Deliver this subscription's webhook from now on (no-op without one, or if running)."""
        key = view.subscription_id
        if not view.webhook_url or view.deleted_at is not None:
            return
        if key in self._workers and not self._workers[key].done():
            return
        self._workers[key] = asyncio.create_task(self._run(key), name=f"webhook {key}")

    def forget(self, subscription_id: str) -> None:
        """Stop the subscription's worker (it was deleted)."""
        task = self._workers.pop(subscription_id, None)
        webhook_backlog_gone(subscription_id)
        if task is not None:
            task.cancel()

    async def stop(self) -> None:
        """Stop every worker."""
        tasks = list(self._workers.values())
        for subscription_id in self._workers:
            webhook_backlog_gone(subscription_id)
        self._workers.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self, subscription_id: str) -> None:
        while True:
            try:
                if not await self._deliver_for_a_while(subscription_id):
                    webhook_backlog_gone(subscription_id)
                    return
            except _TRANSIENT as transient:
                logger.warning(
                    "read model or key service unreachable; retrying",
                    extra={"subscription": subscription_id, "error": type(transient).__name__},
                )
                await asyncio.sleep(self._poll_s)
            except Exception:
                logger.exception("webhook worker failed; restarting it",
                                 extra={"subscription": subscription_id})  # fmt: skip
                await asyncio.sleep(self._poll_s)

    async def _deliver_for_a_while(self, subscription_id: str) -> bool:
        """Deliver for up to one poll interval from the state as stored; False when done.

        The worker is the only writer of its progress, so it keeps it in memory in between and
        reads only new feed entries (a batch at a time), woken by the matcher as each is
        numbered. What others change (Resend, delete, a rotated secret) is read again at the
        start of every interval, and at once when this replica made the change
        (`Wakeups.changed`).
        """
        parts = self._parts
        wakeups = parts.wakeups
        revision = wakeups.revision(subscription_id)
        view = await parts.subscriptions.subscription(subscription_id)
        if view is None or view.deleted_at is not None or not view.webhook_url:
            return False
        delivery = await parts.progress.delivery(subscription_id)
        pending: deque[Notification] = deque()
        read_stored = True  # once an interval, whatever was handed over: the feed as stored
        until = time.monotonic() + self._poll_s
        try:
            while (left := until - time.monotonic()) > 0:
                if wakeups.revision(subscription_id) != revision:
                    return True  # read the changed subscription before the next POST
                # Noted before reading the feed: a notification numbered meanwhile wakes us.
                news = wakeups.news(subscription_id)
                target = delivery.next_target()
                webhook_backlog(subscription_id, target, parts.fresh.head(subscription_id))
                if target is None:
                    await self._saver.flush(subscription_id, delivery)
                    await wakeups.wait(subscription_id, left, seen=news)
                    return True
                now = self._clock()
                if delivery.next_attempt_at is not None and now < delivery.next_attempt_at:
                    wait = (delivery.next_attempt_at - now).total_seconds()
                    await wakeups.wait(subscription_id, min(wait, left), seen=news)
                    continue
                if not pending or pending[0].sequence != target:
                    pending = deque(await self._next_batch(view, target, read_stored))
                    read_stored = False
                    if not pending or pending[0].sequence != target:
                        await self._saver.flush(subscription_id, delivery)
                        await wakeups.wait(subscription_id, left, seen=news)
                        continue
                if await self._attempt(view, delivery, pending[0]):
                    pending.popleft()
        finally:
            await self._saver.flush(subscription_id, delivery)
        return True

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

        Successes are saved in batches (`_Progress`): after a crash the last few are posted
        again with the same webhook-ids, which receivers drop. Failures are saved at once.
        """
        parts, key = self._parts, view.subscription_id
        now = self._clock()
        origin = RequestOrigin(request_id=notification.notification_id)
        await parts.disclosures.record(
            view.owner, notification, channel="WebhookDelivery", origin=origin
        )
        body = webhook_body(notification.type, now, as_json(notification_message(notification)))
        secrets = [await parts.secrets.open(c) for c in view.signing_secrets(now)]
        # A client span under the one that matched the event; the POST carries its traceparent.
        with webhook_post(notification.event_id) as span:
            started = time.perf_counter()
            outcome = await parts.sender.post(
                view.webhook_url, notification.notification_id, body, secrets
            )
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


class _Progress:
    """Saves a worker's successes at most every `_SAVE_EVERY_S` (and whenever it pauses)."""

    def __init__(self, progress: DeliveryProgress) -> None:
        self._progress = progress
        self._unsaved: dict[str, list[int]] = {}
        self._saved_at: dict[str, float] = {}

    async def delivered(self, key: str, delivery: Delivery, sequence: int) -> None:
        self._unsaved.setdefault(key, []).append(sequence)
        if time.monotonic() - self._saved_at.get(key, 0.0) >= _SAVE_EVERY_S:
            await self.flush(key, delivery)

    async def flush(self, key: str, delivery: Delivery) -> None:
        sent = self._unsaved.pop(key, [])
        if sent:
            await self._progress.save(key, delivery, sent=sent)
        self._saved_at[key] = time.monotonic()
