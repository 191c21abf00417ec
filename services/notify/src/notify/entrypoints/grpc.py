"""NotifyServicer: authenticate, translate, authorize through policy, map failures to codes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeAlias

import grpc

from clinical.notify.v1 import notify_pb2 as pb
from clinical.notify.v1 import notify_pb2_grpc
from clinical_platform.access.origin import request_origin
from clinical_platform.access.outbox import AccessAuditUnavailableError
from clinical_platform.grpc_auth import authenticate
from clinical_platform.grpc_context import command_context
from clinical_platform.grpc_errors import StatusTable, failures_as_status
from clinical_platform.observability.webhooks import stream_message
from clinical_platform.tokens import TokenVerifier
from clinical_platform.validation import Violations
from notify import policy
from notify.application import NotifyApp
from notify.domain.errors import (
    HandshakeFailed,
    NoSuchNotification,
    NothingToResend,
    NotTheOwner,
    SubscriptionDeleted,
    SubscriptionNotFound,
)
from notify.domain.notification import Notification
from notify.domain.subscription import SubscriptionView
from notify.entrypoints import translate
from notify.ports import Disclosures

Context: TypeAlias = grpc.aio.ServicerContext
STATUSES: StatusTable = {
    SubscriptionNotFound: grpc.StatusCode.NOT_FOUND,
    SubscriptionDeleted: grpc.StatusCode.NOT_FOUND,
    NoSuchNotification: grpc.StatusCode.NOT_FOUND,
    NotTheOwner: grpc.StatusCode.PERMISSION_DENIED,
    policy.AccessRefused: grpc.StatusCode.PERMISSION_DENIED,
    HandshakeFailed: grpc.StatusCode.FAILED_PRECONDITION,
    NothingToResend: grpc.StatusCode.FAILED_PRECONDITION,
    # Full content is not sent unless its disclosure is in the access audit.
    AccessAuditUnavailableError: grpc.StatusCode.UNAVAILABLE,
}
_DISCLOSURE_UNAVAILABLE = "the disclosure could not be audited; retry later"


class NotifyServicer(notify_pb2_grpc.NotifyServiceServicer):
    """The public API of the notify service."""

    def __init__(
        self,
        app: NotifyApp,
        verifier: TokenVerifier,
        disclosures: Disclosures,
        *,
        heartbeat_s: float,
        poll_interval_s: float,
    ) -> None:
        self._app = app
        self._verifier = verifier
        self._disclosures = disclosures
        self._heartbeat_s = heartbeat_s
        self._poll_s = poll_interval_s

    async def CreateSubscription(  # noqa: N802 - named by the proto service
        self, request: pb.CreateSubscriptionRequest, context: Context
    ) -> pb.CreateSubscriptionResponse:
        """Subscribe the caller (clinicians and lab staff to anyone, patients to themselves)."""
        principal = await authenticate(context, self._verifier)
        async with failures_as_status(context, STATUSES):
            violations = Violations()
            command = translate.create_subscription(request, violations)
            violations.raise_if_any()
            owner = policy.owner_of(principal)
            command = replace(
                command, event_filter=policy.authorized_filter(owner, command.event_filter)
            )
            provenance = command_context(
                context, actor=principal.actor, request_id=request.request_id
            )
            created = await self._app.create(command, owner, provenance)
        return pb.CreateSubscriptionResponse(
            subscription=translate.subscription_message(created.subscription),
            webhook_secret=created.webhook_secret,
        )

    async def GetSubscription(  # noqa: N802
        self, request: pb.GetSubscriptionRequest, context: Context
    ) -> pb.GetSubscriptionResponse:
        """One of the caller's own subscriptions."""
        principal = await authenticate(context, self._verifier)
        async with failures_as_status(context, STATUSES):
            view = await self._app.get(translate.subscription_id_from(request), principal.subject)
        return pb.GetSubscriptionResponse(subscription=translate.subscription_message(view))

    async def ListSubscriptions(  # noqa: N802
        self, request: pb.ListSubscriptionsRequest, context: Context
    ) -> pb.ListSubscriptionsResponse:
        """The caller's live subscriptions, oldest first, a page at a time."""
        principal = await authenticate(context, self._verifier)
        async with failures_as_status(context, STATUSES):
            size, after = translate.subscriptions_page(request)
            views = await self._app.list_subscriptions(
                principal.subject, after=after, limit=size + 1
            )
        more = len(views) > size
        views = views[:size]
        return pb.ListSubscriptionsResponse(
            subscriptions=[translate.subscription_message(v) for v in views],
            next_page_token=translate.page_token(views[-1]) if more else "",
        )

    async def DeleteSubscription(  # noqa: N802
        self, request: pb.DeleteSubscriptionRequest, context: Context
    ) -> pb.DeleteSubscriptionResponse:
        """Delete one of the caller's subscriptions."""
        principal = await authenticate(context, self._verifier)
        async with failures_as_status(context, STATUSES):
            subscription_id = translate.subscription_id_from(request, request_id=request.request_id)
            provenance = command_context(
                context, actor=principal.actor, request_id=request.request_id
            )
            version = await self._app.delete(subscription_id, principal.subject, provenance)
        return pb.DeleteSubscriptionResponse(version=version)

    async def RotateWebhookSecret(  # noqa: N802
        self, request: pb.RotateWebhookSecretRequest, context: Context
    ) -> pb.RotateWebhookSecretResponse:
        """A new signing secret for the caller's webhook; the old one signs too for a while."""
        principal = await authenticate(context, self._verifier)
        async with failures_as_status(context, STATUSES):
            subscription_id = translate.subscription_id_from(request, request_id=request.request_id)
            provenance = command_context(
                context, actor=principal.actor, request_id=request.request_id
            )
            rotated = await self._app.rotate_secret(subscription_id, principal.subject, provenance)
        response = pb.RotateWebhookSecretResponse(
            webhook_secret=rotated.webhook_secret, version=rotated.version
        )
        response.previous_secret_expires_at.FromDatetime(rotated.previous_expires_at)
        return response

    async def Subscribe(  # noqa: N802
        self, request: pb.SubscribeRequest, context: Context
    ) -> AsyncIterator[pb.SubscribeResponse]:
        """Replay after resume_after, then follow live; a heartbeat whenever idle that long."""
        principal = await authenticate(context, self._verifier)
        async with failures_as_status(context, STATUSES):
            subscription_id = translate.subscription_id_from(request)
            view = await self._app.get(subscription_id, principal.subject)
            _refuse_beyond_head("resume_after", request.resume_after, await self._app.head(view))
        cursor = request.resume_after
        last_sent = time.monotonic()
        while True:
            mark = self._app.news_mark(view)  # before reading: a wake while reading counts
            async with failures_as_status(context, STATUSES):
                notifications = await self._app.notifications(view, since=cursor, limit=100)
            for notification in notifications:
                async with failures_as_status(context, STATUSES):
                    await self._disclose(context, view, notification, "Subscribe")
                with stream_message(notification.event_id, "Subscribe"):
                    yield pb.SubscribeResponse(
                        notification=translate.notification_message(notification)
                    )
                cursor = notification.sequence
                last_sent = time.monotonic()
            if notifications:
                continue
            idle = time.monotonic() - last_sent
            if idle >= self._heartbeat_s:
                beat = pb.Heartbeat(head_sequence=cursor)
                beat.at.FromDatetime(datetime.now(UTC))
                yield pb.SubscribeResponse(heartbeat=beat)
                last_sent = time.monotonic()
                idle = 0.0
            wait_s = min(self._poll_s, self._heartbeat_s - idle)
            if await self._app.wait_for_news(view, wait_s, seen=mark):
                continue  # woken by the matcher: straight to the new notifications
            async with failures_as_status(context, STATUSES):
                # The owner may have deleted it meanwhile (through any replica).
                view = await self._app.get(subscription_id, principal.subject)

    async def GetStatus(  # noqa: N802
        self, request: pb.GetStatusRequest, context: Context
    ) -> pb.GetStatusResponse:
        """The webhook's delivery progress and the newest number."""
        principal = await authenticate(context, self._verifier)
        async with failures_as_status(context, STATUSES):
            status = await self._app.status(
                translate.subscription_id_from(request), principal.subject
            )
        return translate.status_message(status)

    async def ListEvents(  # noqa: N802
        self, request: pb.ListEventsRequest, context: Context
    ) -> pb.ListEventsResponse:
        """Replay: the notifications after ``since``, a page at a time."""
        principal = await authenticate(context, self._verifier)
        async with failures_as_status(context, STATUSES):
            subscription_id, size = translate.events_page(request)
            view = await self._app.get(subscription_id, principal.subject)
            page = await self._app.list_events(view, since=request.since, limit=size)
            _refuse_beyond_head("since", request.since, page.head)
            for notification in page.notifications:
                await self._disclose(context, view, notification, "ListEvents")
        return pb.ListEventsResponse(
            notifications=[translate.notification_message(n) for n in page.notifications],
            head_sequence=page.head,
        )

    async def Resend(  # noqa: N802
        self, request: pb.ResendRequest, context: Context
    ) -> pb.ResendResponse:
        """Deliver the dead letters (or one delivered notification) again."""
        principal = await authenticate(context, self._verifier)
        sequence = request.sequence if request.HasField("sequence") else None
        async with failures_as_status(context, STATUSES):
            queued = await self._app.resend(
                translate.subscription_id_from(request), principal.subject, sequence
            )
        return pb.ResendResponse(queued=queued)

    async def _disclose(
        self, context: Context, view: SubscriptionView, notification: Notification, operation: str
    ) -> None:
        try:
            await self._disclosures.record(
                view.owner, notification, channel=operation, origin=request_origin(context)
            )
        except AccessAuditUnavailableError:
            raise AccessAuditUnavailableError(_DISCLOSURE_UNAVAILABLE) from None


def _refuse_beyond_head(field: str, after: int, head: int) -> None:
    if after > head:
        violations = Violations()
        violations.add(field, f"is beyond the newest notification ({head})")
        violations.raise_if_any()
