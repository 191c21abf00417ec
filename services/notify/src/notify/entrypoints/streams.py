"""The Subscribe stream: replay after a number, then live notifications, heartbeats while
idle, until the client leaves or the subscription's grant lapses.

The grant is checked before every read (`NotificationReplay.notifications`) and the
subscription read again whenever a wait times out (at most an interval) or this replica
changed it: a revoked stream ends with PERMISSION_DENIED, an expired one with
FAILED_PRECONDITION, and a deleted one with NOT_FOUND.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeAlias
from uuid import UUID

import grpc

from clinical.notify.v1 import notify_pb2 as pb
from clinical_platform.grpc_errors import StatusTable, failures_as_status
from clinical_platform.observability.webhooks import stream_message
from notify.domain.notification import Notification
from notify.domain.subscription import SubscriptionView
from notify.entrypoints.messages import notification_message
from notify.replay import NotificationReplay

Context: TypeAlias = grpc.aio.ServicerContext
Disclose = Callable[[SubscriptionView, Notification], Awaitable[None]]
Reread = Callable[[UUID], Awaitable[SubscriptionView]]


async def notifications_stream(  # noqa: PLR0917 - the stream's parts, each once
    context: Context, statuses: StatusTable, replay: NotificationReplay,
    view: SubscriptionView, cursor: int, reread: Reread, disclose: Disclose,
    *, heartbeat_s: float, poll_s: float,
) -> AsyncIterator[pb.SubscribeResponse]:  # fmt: skip
    """What Subscribe sends after ``cursor``, for a subscription the caller may read."""
    subscription_id = UUID(view.subscription_id)
    last_sent = time.monotonic()
    while True:
        mark = replay.news_mark(view)  # before reading: a wake while reading counts
        async with failures_as_status(context, statuses):
            notifications = await replay.notifications(view, since=cursor, limit=100)
        for notification in notifications:
            async with failures_as_status(context, statuses):
                await disclose(view, notification)
            with stream_message(notification.event_id, "Subscribe"):
                yield pb.SubscribeResponse(notification=notification_message(notification))
            cursor = notification.sequence
            last_sent = time.monotonic()
        if notifications:
            continue
        idle = time.monotonic() - last_sent
        if idle >= heartbeat_s:
            beat = pb.Heartbeat(head_sequence=cursor)
            beat.at.FromDatetime(datetime.now(UTC))
            yield pb.SubscribeResponse(heartbeat=beat)
            last_sent = time.monotonic()
            idle = 0.0
        wait_s = min(poll_s, heartbeat_s - idle)
        if await replay.wait_for_news(view, wait_s, seen=mark):
            continue  # woken by the matcher: straight to the new notifications
        async with failures_as_status(context, statuses):
            # The owner may have deleted, renewed or revoked it meanwhile (through any replica).
            view = await reread(subscription_id)
