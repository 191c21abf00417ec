"""NotifyServicer: authenticate, translate, authorize through policy, map failures to codes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from functools import partial
from typing import TypeAlias
from uuid import UUID

import grpc

from clinical.notify.v1 import notify_pb2 as pb
from clinical.notify.v1 import notify_pb2_grpc
from clinical_platform.access.origin import request_origin
from clinical_platform.access.outbox import AccessAuditUnavailableError
from clinical_platform.eventlog.context import CommandContext
from clinical_platform.grpc_auth import authenticate
from clinical_platform.grpc_context import command_context
from clinical_platform.grpc_errors import StatusTable, failures_as_status
from clinical_platform.principals import Principal
from clinical_platform.tokens import TokenVerifier
from clinical_platform.validation import Violations
from notify import policy
from notify.application import NotifyApp
from notify.domain.errors import (
    HandshakeFailed,
    NoSuchNotification,
    NotAnAdministrator,
    NothingToResend,
    NotTheOwner,
    QuotaExceeded,
    SubscriptionDeleted,
    SubscriptionExpired,
    SubscriptionNotFound,
    SubscriptionRevoked,
)
from notify.domain.notification import Notification
from notify.domain.subscription import SubscriptionView
from notify.entrypoints import translate
from notify.entrypoints.messages import notification_message
from notify.entrypoints.streams import notifications_stream
from notify.grants import SubscriptionGrants
from notify.ports import Disclosures
from notify.replay import NotificationReplay

Context: TypeAlias = grpc.aio.ServicerContext
STATUSES: StatusTable = {
    SubscriptionNotFound: grpc.StatusCode.NOT_FOUND,
    SubscriptionDeleted: grpc.StatusCode.NOT_FOUND,
    NoSuchNotification: grpc.StatusCode.NOT_FOUND,
    NotTheOwner: grpc.StatusCode.PERMISSION_DENIED,
    policy.AccessRefused: grpc.StatusCode.PERMISSION_DENIED,
    HandshakeFailed: grpc.StatusCode.FAILED_PRECONDITION,
    NothingToResend: grpc.StatusCode.FAILED_PRECONDITION,
    SubscriptionExpired: grpc.StatusCode.FAILED_PRECONDITION,
    SubscriptionRevoked: grpc.StatusCode.PERMISSION_DENIED,
    NotAnAdministrator: grpc.StatusCode.PERMISSION_DENIED,
    QuotaExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    # Full content is not sent unless its disclosure is in the access audit.
    AccessAuditUnavailableError: grpc.StatusCode.UNAVAILABLE,
}
_DISCLOSURE_UNAVAILABLE = "the disclosure could not be audited; retry later"


class NotifyServicer(notify_pb2_grpc.NotifyServiceServicer):
    """The public API of the notify service."""

    def __init__(
        self,
        app: NotifyApp,
        grants: SubscriptionGrants,
        replay: NotificationReplay,
        verifier: TokenVerifier,
        disclosures: Disclosures,
        *,
        heartbeat_s: float,
        poll_interval_s: float,
    ) -> None:
        self._app = app
        self._grants = grants
        self._replay = replay
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
                command,
                event_filter=policy.authorized_filter(owner, command.event_filter, command.content),
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
            subscription_id, provenance = _command_on(request, context, principal)
            version = await self._app.delete(subscription_id, principal.subject, provenance)
        return pb.DeleteSubscriptionResponse(version=version)

    async def RotateWebhookSecret(  # noqa: N802
        self, request: pb.RotateWebhookSecretRequest, context: Context
    ) -> pb.RotateWebhookSecretResponse:
        """A new signing secret for the caller's webhook; the old one signs too for a while."""
        principal = await authenticate(context, self._verifier)
        async with failures_as_status(context, STATUSES):
            subscription_id, provenance = _command_on(request, context, principal)
            rotated = await self._app.rotate_secret(subscription_id, principal.subject, provenance)
        response = pb.RotateWebhookSecretResponse(
            webhook_secret=rotated.webhook_secret, version=rotated.version
        )
        response.previous_secret_expires_at.FromDatetime(rotated.previous_expires_at)
        return response

    async def Subscribe(  # noqa: N802
        self, request: pb.SubscribeRequest, context: Context
    ) -> AsyncIterator[pb.SubscribeResponse]:
        """Replay after resume_after, then follow live; a heartbeat whenever idle that long.
        The stream ends when the subscription's grant lapses (expired, revoked)."""
        principal = await authenticate(context, self._verifier)
        async with failures_as_status(context, STATUSES):
            subscription_id = translate.subscription_id_from(request)
            view = await self._app.active(subscription_id, principal.subject)
            _refuse_beyond_head("resume_after", request.resume_after, await self._replay.head(view))

        async def disclose(view: SubscriptionView, notification: Notification) -> None:
            await self._disclose(context, view, notification, "Subscribe")

        stream = notifications_stream(
            context, STATUSES, self._replay, view, request.resume_after,
            partial(self._app.active, caller=principal.subject), disclose,
            heartbeat_s=self._heartbeat_s, poll_s=self._poll_s,
        )  # fmt: skip
        async for response in stream:
            yield response

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
            view = await self._app.active(subscription_id, principal.subject)
            page = await self._replay.list_events(view, since=request.since, limit=size)
            _refuse_beyond_head("since", request.since, page.head)
            for notification in page.notifications:
                await self._disclose(context, view, notification, "ListEvents")
        return pb.ListEventsResponse(
            notifications=[notification_message(n) for n in page.notifications],
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

    async def RenewSubscription(  # noqa: N802
        self, request: pb.RenewSubscriptionRequest, context: Context
    ) -> pb.RenewSubscriptionResponse:
        """Extend the caller's active subscription by one lifetime from now."""
        principal = await authenticate(context, self._verifier)
        async with failures_as_status(context, STATUSES):
            subscription_id, provenance = _command_on(request, context, principal)
            view = await self._grants.renew(subscription_id, principal.subject, provenance)
        return pb.RenewSubscriptionResponse(subscription=translate.subscription_message(view))

    async def RevokeSubscription(  # noqa: N802
        self, request: pb.RevokeSubscriptionRequest, context: Context
    ) -> pb.RevokeSubscriptionResponse:
        """Revoke a subscription: the owner's own, or anyone's for an administrator."""
        principal = await authenticate(context, self._verifier)
        async with failures_as_status(context, STATUSES):
            subscription_id, provenance = _command_on(request, context, principal)
            version = await self._grants.revoke(
                subscription_id, principal.subject, provenance,
                administrator=policy.is_administrator(principal),
            )  # fmt: skip
        return pb.RevokeSubscriptionResponse(version=version)

    async def RevokeOwnerSubscriptions(  # noqa: N802
        self, request: pb.RevokeOwnerSubscriptionsRequest, context: Context
    ) -> pb.RevokeOwnerSubscriptionsResponse:
        """Revoke every subscription of one owner (an administrator, or the owner)."""
        principal = await authenticate(context, self._verifier)
        async with failures_as_status(context, STATUSES):
            owner = translate.owner_from(request)
            provenance = command_context(
                context, actor=principal.actor, request_id=request.request_id
            )
            revoked = await self._grants.revoke_owner(
                owner, principal.subject, provenance,
                administrator=policy.is_administrator(principal),
            )  # fmt: skip
        return pb.RevokeOwnerSubscriptionsResponse(revoked=revoked)

    async def _disclose(
        self, context: Context, view: SubscriptionView, notification: Notification, operation: str
    ) -> None:
        try:
            await self._disclosures.record(
                view.owner, notification, channel=operation, origin=request_origin(context)
            )
        except AccessAuditUnavailableError:
            raise AccessAuditUnavailableError(_DISCLOSURE_UNAVAILABLE) from None


def _command_on(
    request: translate.SubscriptionCommand, context: Context, principal: Principal
) -> tuple[UUID, CommandContext]:
    """The subscription a command is about, and its provenance (InvalidRequest if malformed)."""
    subscription_id = translate.subscription_id_from(request, request_id=request.request_id)
    return subscription_id, command_context(
        context, actor=principal.actor, request_id=request.request_id
    )


def _refuse_beyond_head(field: str, after: int, head: int) -> None:
    if after > head:
        violations = Violations()
        violations.add(field, f"is beyond the newest notification ({head})")
        violations.raise_if_any()
