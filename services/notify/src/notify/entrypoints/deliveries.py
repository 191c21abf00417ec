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
from collections.abc import Callable
from datetime import UTC, datetime

from pymongo.errors import ConnectionFailure

from clinical.notify.v1 import notify_pb2 as pb
from clinical_platform.access.outbox import AccessAuditUnavailableError
from clinical_platform.access.records import RequestOrigin
from clinical_platform.security.errors import KeyServiceUnavailableError
from notify.adapters.disclosures import Disclosures
from notify.adapters.documents import Delivery, DeliveryState, NotifyDocuments
from notify.adapters.rendering import as_json
from notify.adapters.secrets import TransitSecretBox
from notify.adapters.webhooks import WebhookSender, webhook_body
from notify.application import NotifyApp, Wakeups
from notify.domain.backoff import RetrySchedule
from notify.domain.subscription import SubscriptionView

logger = logging.getLogger(__name__)
# Also the access audit: a full-content notification waits until its disclosure is recorded.
_TRANSIENT = (ConnectionFailure, KeyServiceUnavailableError, AccessAuditUnavailableError)
# Notifications rendered per feed read, and how often a busy worker saves its progress.
_BATCH = 50
_SAVE_EVERY_S = 0.25


def _now() -> datetime:
    return datetime.now(UTC)


class WebhookDeliveries:
    """Starts and stops the per-subscription workers as the matcher learns of subscriptions."""

    def __init__(
        self,
        app: NotifyApp,
        documents: NotifyDocuments,
        *,
        secrets: TransitSecretBox,
        sender: WebhookSender,
        wakeups: Wakeups,
        schedule: RetrySchedule,
        disclosures: Disclosures,
        poll_interval_s: float,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._app = app
        self._documents = documents
        self._secrets = secrets
        self._sender = sender
        self._wakeups = wakeups
        self._schedule = schedule
        self._disclosures = disclosures
        self._poll_s = poll_interval_s
        self._clock = clock
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._progress = _Progress(documents)

    def track(self, view: SubscriptionView) -> None:
        """Deliver this subscription's webhook from now on (no-op without one, or if running)."""
        key = view.subscription_id
        if not view.webhook_url or view.deleted_at is not None:
            return
        if key in self._workers and not self._workers[key].done():
            return
        self._workers[key] = asyncio.create_task(self._run(key), name=f"webhook {key}")

    def forget(self, subscription_id: str) -> None:
        task = self._workers.pop(subscription_id, None)
        if task is not None:
            task.cancel()

    async def stop(self) -> None:
        tasks = list(self._workers.values())
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
        reads only new feed entries (a batch at a time); what others change (Resend, delete,
        a rotated secret) is read again at the start of every interval.
        """
        view = await self._documents.subscription(subscription_id)
        if view is None or view.deleted_at is not None or not view.webhook_url:
            return False
        delivery = await self._documents.delivery(subscription_id)
        pending: deque[pb.Notification] = deque()
        until = time.monotonic() + self._poll_s
        try:
            while (left := until - time.monotonic()) > 0:
                target = _next_target(delivery)
                if target is None:
                    await self._progress.flush(subscription_id, delivery)
                    await self._wakeups.wait(subscription_id, left)
                    return True
                now = self._clock()
                if delivery.next_attempt_at is not None and now < delivery.next_attempt_at:
                    wait = (delivery.next_attempt_at - now).total_seconds()
                    await asyncio.sleep(min(wait, left))
                    continue
                if not pending or pending[0].sequence != target:
                    entries = await self._documents.entries(
                        subscription_id, after=target - 1, limit=_BATCH
                    )
                    pending = deque(await self._app.render_all(view, entries))
                    if not pending or pending[0].sequence != target:
                        await self._progress.flush(subscription_id, delivery)
                        await self._wakeups.wait(subscription_id, left)
                        continue
                if await self._attempt(view, delivery, pending[0]):
                    pending.popleft()
        finally:
            await self._progress.flush(subscription_id, delivery)
        return True

    async def _attempt(
        self, view: SubscriptionView, delivery: Delivery, notification: pb.Notification
    ) -> bool:
        """POST one notification and record the outcome; True when it was delivered.

        Successes are saved in batches (`_Progress`): after a crash the last few are posted
        again with the same webhook-ids, which receivers drop. Failures are saved at once.
        """
        key = view.subscription_id
        now = self._clock()
        origin = RequestOrigin(request_id=notification.notification_id)
        await self._disclosures.record(
            view.owner, notification, channel="WebhookDelivery", origin=origin
        )
        body = webhook_body(notification.type, now, as_json(notification))
        secrets = [await self._secrets.open(c) for c in view.signing_secrets(now)]
        outcome = await self._sender.post(
            view.webhook_url, notification.notification_id, body, secrets
        )
        now = self._clock()
        sequence = notification.sequence
        if outcome.error is None:
            _succeeded(delivery, sequence, now)
            await self._progress.delivered(key, delivery, sequence)
            return True
        await self._progress.flush(key, delivery)
        delivery.failed_attempts += 1
        delivery.attempts += 1
        delivery.first_failure_at = delivery.first_failure_at or now
        delivery.last_error, delivery.last_error_at = outcome.error, now
        retry_at = self._schedule.next_attempt(delivery.attempts, delivery.first_failure_at, now)
        if retry_at is None:
            where = {"subscription": key, "sequence": sequence}
            logger.warning("webhook retries ran out; notification dead-lettered", extra=where)
            delivery.dead_lettered += 1
            delivery.state = DeliveryState.OFF
            delivery.attempts, delivery.first_failure_at, delivery.next_attempt_at = 0, None, None
            if sequence in delivery.resend:
                delivery.resend.remove(sequence)
            delivery.dead_letters.append(sequence)
            await self._documents.dead_letter(key, delivery, sequence)
            return False
        delivery.state = DeliveryState.ERROR
        delivery.next_attempt_at = retry_at
        await self._documents.save_delivery(key, delivery)
        return False


class _Progress:
    """Saves a worker's successes at most every `_SAVE_EVERY_S` (and whenever it pauses)."""

    def __init__(self, documents: NotifyDocuments) -> None:
        self._documents = documents
        self._unsaved: dict[str, list[int]] = {}
        self._saved_at: dict[str, float] = {}

    async def delivered(self, key: str, delivery: Delivery, sequence: int) -> None:
        self._unsaved.setdefault(key, []).append(sequence)
        if time.monotonic() - self._saved_at.get(key, 0.0) >= _SAVE_EVERY_S:
            await self.flush(key, delivery)

    async def flush(self, key: str, delivery: Delivery) -> None:
        sent = self._unsaved.pop(key, [])
        if sent:
            await self._documents.save_delivery(key, delivery, sent=sent)
        self._saved_at[key] = time.monotonic()


def _next_target(delivery: Delivery) -> int | None:
    """Resends first; then the notification after the cursor, unless the webhook is off."""
    if delivery.resend:
        return min(delivery.resend)
    if delivery.state == DeliveryState.OFF:
        return None
    return delivery.cursor + 1


def _succeeded(delivery: Delivery, sequence: int, now: datetime) -> None:
    if sequence in delivery.resend:
        delivery.resend.remove(sequence)
    elif sequence == delivery.cursor + 1:
        delivery.cursor = sequence
    delivery.delivered += 1
    delivery.state = DeliveryState.ACTIVE
    delivery.attempts, delivery.first_failure_at, delivery.next_attempt_at = 0, None, None
    delivery.last_success_at = now
