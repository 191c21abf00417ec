"""NotifyServicer: authenticate, check the request, call the application, map refusals to codes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import NoReturn
from uuid import UUID

import grpc

from clinical.notify.v1 import notify_pb2 as pb
from clinical.notify.v1 import notify_pb2_grpc
from clinical_platform.access.origin import request_origin
from clinical_platform.access.outbox import AccessAuditUnavailableError
from clinical_platform.eventlog.errors import EventLogError
from clinical_platform.grpc_auth import authenticate
from clinical_platform.grpc_context import command_context
from clinical_platform.grpc_errors import abort_for, invalid_argument
from clinical_platform.principals import Principal
from clinical_platform.security.errors import SecurityError
from clinical_platform.tokens import TokenVerifier
from clinical_platform.validation import FieldViolation, Violations
from notify.adapters.disclosures import Disclosures
from notify.adapters.documents import NotifyDocuments
from notify.application import AccessRefused, NotifyApp
from notify.domain.errors import (
    HandshakeFailed,
    InvalidSubscription,
    NoSuchNotification,
    NothingToResend,
    NotifyDomainError,
    NotTheOwner,
    SubscriptionDeleted,
    SubscriptionNotFound,
)
from notify.domain.policy import owner_of
from notify.domain.subscription import SubscriptionView
from notify.entrypoints import messages

_FAILURES = (NotifyDomainError, AccessRefused, EventLogError, SecurityError)
_Failure = NotifyDomainError | AccessRefused | EventLogError | SecurityError


class NotifyServicer(notify_pb2_grpc.NotifyServiceServicer):
    """The public API of the notify service."""

    def __init__(
        self,
        app: NotifyApp,
        documents: NotifyDocuments,
        verifier: TokenVerifier,
        disclosures: Disclosures,
        *,
        heartbeat_s: float,
        poll_interval_s: float,
    ) -> None:
        self._app = app
        self._documents = documents
        self._verifier = verifier
        self._disclosures = disclosures
        self._heartbeat_s = heartbeat_s
        self._poll_s = poll_interval_s

    async def CreateSubscription(  # noqa: N802 - named by the proto service
        self, request: pb.CreateSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateSubscriptionResponse:
        principal = await authenticate(context, self._verifier)
        violations = Violations()
        command = messages.create_subscription(request, violations)
        await _refuse_if_any(context, violations)
        provenance = command_context(context, actor=principal.actor, request_id=request.request_id)
        try:
            created = await self._app.create(command, owner_of(principal), provenance)
        except _FAILURES as failure:
            await _abort(context, failure)
        return pb.CreateSubscriptionResponse(
            subscription=messages.subscription_message(created.subscription),
            webhook_secret=created.webhook_secret,
        )

    async def GetSubscription(  # noqa: N802
        self, request: pb.GetSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetSubscriptionResponse:
        principal, subscription_id = await self._caller(context, request.subscription_id)
        try:
            view = await self._app.get(subscription_id, principal.subject)
        except _FAILURES as failure:
            await _abort(context, failure)
        return pb.GetSubscriptionResponse(subscription=messages.subscription_message(view))

    async def ListSubscriptions(  # noqa: N802
        self, request: pb.ListSubscriptionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSubscriptionsResponse:
        principal = await authenticate(context, self._verifier)
        violations = Violations()
        size = violations.page_size(
            request.page_size, default=messages.DEFAULT_SUBSCRIPTIONS_PAGE,
            maximum=messages.MAX_SUBSCRIPTIONS_PAGE,
        )  # fmt: skip
        after = messages.after_token(request.page_token, violations)
        await _refuse_if_any(context, violations)
        views = await self._app.list_subscriptions(principal.subject, after=after, limit=size + 1)
        more = len(views) > size
        views = views[:size]
        return pb.ListSubscriptionsResponse(
            subscriptions=[messages.subscription_message(v) for v in views],
            next_page_token=messages.page_token(views[-1]) if more else "",
        )

    async def DeleteSubscription(  # noqa: N802
        self, request: pb.DeleteSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteSubscriptionResponse:
        principal, subscription_id = await self._caller(
            context, request.subscription_id, request_id=request.request_id
        )
        provenance = command_context(context, actor=principal.actor, request_id=request.request_id)
        try:
            version = await self._app.delete(subscription_id, principal.subject, provenance)
        except _FAILURES as failure:
            await _abort(context, failure)
        return pb.DeleteSubscriptionResponse(version=version)

    async def RotateWebhookSecret(  # noqa: N802
        self, request: pb.RotateWebhookSecretRequest, context: grpc.aio.ServicerContext
    ) -> pb.RotateWebhookSecretResponse:
        principal, subscription_id = await self._caller(
            context, request.subscription_id, request_id=request.request_id
        )
        provenance = command_context(context, actor=principal.actor, request_id=request.request_id)
        try:
            rotated = await self._app.rotate_secret(subscription_id, principal.subject, provenance)
        except _FAILURES as failure:
            await _abort(context, failure)
        response = pb.RotateWebhookSecretResponse(
            webhook_secret=rotated.webhook_secret, version=rotated.version
        )
        response.previous_secret_expires_at.FromDatetime(rotated.previous_expires_at)
        return response

    async def Subscribe(  # noqa: N802
        self, request: pb.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SubscribeResponse]:
        """Replay after resume_after, then follow live; a heartbeat whenever idle that long."""
        principal, subscription_id = await self._caller(context, request.subscription_id)
        try:
            view = await self._app.get(subscription_id, principal.subject)
            head = await self._documents.head(view.subscription_id)
        except _FAILURES as failure:
            await _abort(context, failure)
        await _refuse_beyond_head(context, "resume_after", request.resume_after, head)
        key = view.subscription_id
        cursor = request.resume_after
        last_sent = time.monotonic()
        while True:
            entries = await self._documents.entries(key, after=cursor, limit=100)
            for notification in await self._app.render_all(view, entries):
                await self._disclose(context, view, notification, "Subscribe")
                yield pb.SubscribeResponse(notification=notification)
                cursor = notification.sequence
                last_sent = time.monotonic()
            if entries:
                continue
            idle = time.monotonic() - last_sent
            if idle >= self._heartbeat_s:
                beat = pb.Heartbeat(head_sequence=cursor)
                beat.at.FromDatetime(datetime.now(UTC))
                yield pb.SubscribeResponse(heartbeat=beat)
                last_sent = time.monotonic()
                idle = 0.0
            await self._app.wakeups.wait(key, min(self._poll_s, self._heartbeat_s - idle))
            try:  # the owner may have deleted it meanwhile (through any replica)
                view = await self._app.get(subscription_id, principal.subject)
            except _FAILURES as failure:
                await _abort(context, failure)

    async def GetStatus(  # noqa: N802
        self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetStatusResponse:
        principal, subscription_id = await self._caller(context, request.subscription_id)
        try:
            status = await self._app.status(subscription_id, principal.subject)
        except _FAILURES as failure:
            await _abort(context, failure)
        return messages.status_message(status)

    async def ListEvents(  # noqa: N802
        self, request: pb.ListEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListEventsResponse:
        principal, subscription_id = await self._caller(context, request.subscription_id)
        violations = Violations()
        size = violations.page_size(
            request.page_size, default=messages.DEFAULT_EVENTS_PAGE,
            maximum=messages.MAX_EVENTS_PAGE,
        )  # fmt: skip
        await _refuse_if_any(context, violations)
        try:
            view = await self._app.get(subscription_id, principal.subject)
            notifications, head = await self._app.list_events(view, since=request.since, limit=size)
        except _FAILURES as failure:
            await _abort(context, failure)
        await _refuse_beyond_head(context, "since", request.since, head)
        for notification in notifications:
            await self._disclose(context, view, notification, "ListEvents")
        return pb.ListEventsResponse(notifications=notifications, head_sequence=head)

    async def Resend(  # noqa: N802
        self, request: pb.ResendRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResendResponse:
        principal, subscription_id = await self._caller(context, request.subscription_id)
        sequence = request.sequence if request.HasField("sequence") else None
        try:
            queued = await self._app.resend(subscription_id, principal.subject, sequence)
        except _FAILURES as failure:
            await _abort(context, failure)
        return pb.ResendResponse(queued=queued)

    async def _disclose(
        self,
        context: grpc.aio.ServicerContext,
        view: SubscriptionView,
        notification: pb.Notification,
        operation: str,
    ) -> None:
        try:
            await self._disclosures.record(
                view.owner, notification, channel=operation, origin=request_origin(context)
            )
        except AccessAuditUnavailableError:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, "the disclosure could not be audited; retry later"
            )

    async def _caller(
        self,
        context: grpc.aio.ServicerContext,
        subscription_id: str,
        *,
        request_id: str | None = None,
    ) -> tuple[Principal, UUID]:
        principal = await authenticate(context, self._verifier)
        violations = Violations()
        if request_id is not None:
            violations.request_id(request_id)
        parsed = violations.uuid("subscription_id", subscription_id)
        await _refuse_if_any(context, violations)
        return principal, parsed


async def _refuse_if_any(context: grpc.aio.ServicerContext, violations: Violations) -> None:
    if violations:
        await invalid_argument(context, violations)


async def _refuse_beyond_head(
    context: grpc.aio.ServicerContext, field: str, after: int, head: int
) -> None:
    if after > head:
        description = f"is beyond the newest notification ({head})"
        await invalid_argument(context, [FieldViolation(field, description)])


async def _abort(context: grpc.aio.ServicerContext, failure: _Failure) -> NoReturn:
    match failure:
        case InvalidSubscription():
            await invalid_argument(context, failure.violations)
        case SubscriptionNotFound() | SubscriptionDeleted() | NoSuchNotification():
            await context.abort(grpc.StatusCode.NOT_FOUND, str(failure))
        case NotTheOwner() | AccessRefused():
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(failure))
        case HandshakeFailed() | NothingToResend():
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(failure))
        case EventLogError() | SecurityError():
            await abort_for(context, failure)
    raise failure
