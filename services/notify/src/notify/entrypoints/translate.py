"""Requests to application commands and queries, and views to responses, every field checked."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from clinical.notify.v1 import notify_pb2 as pb
from clinical_platform.limits import PAGE_TOKEN_CHARS, RequestLimits, declare_limits
from clinical_platform.reads import (
    InvalidPageToken,
    decode_page_token,
    encode_page_token,
    utc_now,
)
from clinical_platform.validation import Violations
from notify.application import CreateSubscription, Status
from notify.domain.delivery import DeliveryState
from notify.domain.subscription import (
    MAX_FILTER_VALUES,
    Content,
    Filter,
    Lapse,
    PayloadFormat,
    SubscriptionView,
    Topic,
)
from notify.domain.webhook import MAX_URL_CHARS

DEFAULT_SUBSCRIPTIONS_PAGE = 50
MAX_SUBSCRIPTIONS_PAGE = 500
DEFAULT_EVENTS_PAGE = 100
MAX_EVENTS_PAGE = 1000

LIMITS = declare_limits(
    pb.DESCRIPTOR,
    RequestLimits(
        chars={"url": MAX_URL_CHARS, "page_token": PAGE_TOKEN_CHARS},
        counts=dict.fromkeys(
            ("topics", "patient_ids", "orderers", "loinc_codes", "priorities"), MAX_FILTER_VALUES
        ),
    ),
)
"""Every other field of a clinical.notify.v1 request: an identifier or code (128)."""

_TOPICS = {
    pb.TOPIC_ORDER_SIGNED: Topic.ORDER_SIGNED,
    pb.TOPIC_RESULT_POSTED: Topic.RESULT_POSTED,
    pb.TOPIC_ORDER_CANCELLED: Topic.ORDER_CANCELLED,
    pb.TOPIC_RESULT_AMENDED: Topic.RESULT_AMENDED,
}
_TOPIC_ENUMS = {topic: number for number, topic in _TOPICS.items()}
_CONTENTS = {
    pb.CONTENT_UNSPECIFIED: Content.ID_ONLY,
    pb.CONTENT_ID_ONLY: Content.ID_ONLY,
    pb.CONTENT_FULL: Content.FULL,
}
_FORMATS = {
    pb.PAYLOAD_FORMAT_UNSPECIFIED: PayloadFormat.NATIVE,
    pb.PAYLOAD_FORMAT_NATIVE: PayloadFormat.NATIVE,
    pb.PAYLOAD_FORMAT_FHIR_R4_BACKPORT: PayloadFormat.FHIR_R4_BACKPORT,
}
_FORMAT_ENUMS = {
    PayloadFormat.NATIVE: pb.PAYLOAD_FORMAT_NATIVE,
    PayloadFormat.FHIR_R4_BACKPORT: pb.PAYLOAD_FORMAT_FHIR_R4_BACKPORT,
}
_GRANT_STATES = {
    None: pb.SUBSCRIPTION_STATE_ACTIVE,
    Lapse.EXPIRED: pb.SUBSCRIPTION_STATE_EXPIRED,
    Lapse.REVOKED: pb.SUBSCRIPTION_STATE_REVOKED,
}
_STATES = {
    DeliveryState.ACTIVE: pb.DELIVERY_STATE_ACTIVE,
    DeliveryState.ERROR: pb.DELIVERY_STATE_ERROR,
    DeliveryState.OFF: pb.DELIVERY_STATE_OFF,
}


def create_subscription(
    request: pb.CreateSubscriptionRequest, violations: Violations
) -> CreateSubscription:
    violations.request_id(request.request_id)
    LIMITS.check(request, violations)
    topics = []
    for index, number in enumerate(request.topics):
        topic = _TOPICS.get(number)
        if topic is None:
            violations.add(f"topics[{index}]", "is not a known topic")
        else:
            topics.append(topic)
    if not request.topics:
        violations.add("topics", "must name at least one topic")
    content = _CONTENTS.get(request.content)
    if content is None:
        violations.add("content", "must be ID_ONLY or FULL")
    f = request.filter
    event_filter = Filter(
        patient_ids=tuple(f.patient_ids), orderers=tuple(f.orderers),
        loinc_codes=tuple(f.loinc_codes), priorities=tuple(f.priorities),
        abnormal_only=f.abnormal_only,
    )  # fmt: skip
    violations.extend(event_filter.problems())
    if request.HasField("webhook") and not request.webhook.url:
        violations.add("webhook.url", "is required with a webhook")
    payload_format = _FORMATS.get(request.payload_format)
    if payload_format is None:
        violations.add("payload_format", "must be NATIVE or FHIR_R4_BACKPORT")
    return CreateSubscription(
        topics=topics, event_filter=event_filter, content=content or Content.ID_ONLY,
        webhook_url=request.webhook.url, payload_format=payload_format or PayloadFormat.NATIVE,
    )  # fmt: skip


SubscriptionRequest = (
    pb.GetSubscriptionRequest
    | pb.DeleteSubscriptionRequest
    | pb.RotateWebhookSecretRequest
    | pb.SubscribeRequest
    | pb.GetStatusRequest
    | pb.ListEventsRequest
    | pb.ResendRequest
    | pb.RenewSubscriptionRequest
    | pb.RevokeSubscriptionRequest
)
"""A request about one subscription, named by ``subscription_id``."""
SubscriptionCommand = (
    pb.DeleteSubscriptionRequest
    | pb.RotateWebhookSecretRequest
    | pb.RenewSubscriptionRequest
    | pb.RevokeSubscriptionRequest
)
"""A command on one subscription, with its ``request_id``."""


def subscription_id_from(request: SubscriptionRequest, *, request_id: str | None = None) -> UUID:
    """The request's subscription id (and request id, for commands), or InvalidRequest."""
    violations = Violations()
    if request_id is not None:
        violations.request_id(request_id)
    LIMITS.check(request, violations)
    parsed = violations.uuid("subscription_id", request.subscription_id)
    violations.raise_if_any()
    return parsed


def owner_from(request: pb.RevokeOwnerSubscriptionsRequest) -> str:
    """The owner whose subscriptions are revoked, or InvalidRequest."""
    violations = Violations()
    violations.request_id(request.request_id)
    LIMITS.check(request, violations)
    if not request.owner.strip():
        violations.add("owner", "is required")
    violations.raise_if_any()
    return request.owner


def subscriptions_page(
    request: pb.ListSubscriptionsRequest,
) -> tuple[int, tuple[datetime, str] | None]:
    """The page size and the position to list after (None: from the first)."""
    violations = Violations()
    LIMITS.check(request, violations)
    size = violations.page_size(
        request.page_size, default=DEFAULT_SUBSCRIPTIONS_PAGE, maximum=MAX_SUBSCRIPTIONS_PAGE
    )
    after = after_token(request.page_token, violations)
    violations.raise_if_any()
    return size, after


def events_page(request: pb.ListEventsRequest) -> tuple[UUID, int]:
    """The subscription and the page size of a replay."""
    subscription_id = subscription_id_from(request)
    violations = Violations()
    size = violations.page_size(
        request.page_size, default=DEFAULT_EVENTS_PAGE, maximum=MAX_EVENTS_PAGE
    )
    violations.raise_if_any()
    return subscription_id, size


def subscription_message(view: SubscriptionView, now: datetime | None = None) -> pb.Subscription:
    """``now`` (default: the current time) decides whether the grant has expired."""
    f = view.event_filter
    message = pb.Subscription(
        subscription_id=view.subscription_id,
        owner=view.owner.subject,
        topics=[_TOPIC_ENUMS[t] for t in view.topics],
        filter=pb.Filter(
            patient_ids=f.patient_ids, orderers=f.orderers, loinc_codes=f.loinc_codes,
            priorities=f.priorities, abnormal_only=f.abnormal_only,
        ),
        content=pb.CONTENT_FULL if view.content is Content.FULL else pb.CONTENT_ID_ONLY,
        version=view.version, payload_format=_FORMAT_ENUMS[view.payload_format],
    )  # fmt: skip
    if view.webhook_url:
        message.webhook.url = view.webhook_url
    message.created_at.FromDatetime(view.created_at)
    message.expires_at.FromDatetime(view.grant_expires_at)
    message.state = _GRANT_STATES[view.lapse(now or utc_now())]
    if view.revoked_at is not None:
        message.revoked_at.FromDatetime(view.revoked_at)
    return message


def status_message(status: Status) -> pb.GetStatusResponse:
    delivery = status.delivery
    state = _STATES.get(delivery.state, pb.DELIVERY_STATE_ACTIVE)
    message = pb.GetStatusResponse(
        state=state if status.has_webhook else pb.DELIVERY_STATE_OFF,
        head_sequence=status.head,
        delivered_sequence=delivery.cursor,
        delivered_count=delivery.delivered,
        failed_attempts=delivery.failed_attempts,
        dead_lettered_count=delivery.dead_lettered,
        dead_letters=sorted(delivery.dead_letters),
        last_error=delivery.last_error,
    )
    for name in ("last_error_at", "last_success_at", "next_attempt_at"):
        if (at := getattr(delivery, name)) is not None:
            getattr(message, name).FromDatetime(at)
    return message


def page_token(view: SubscriptionView) -> str:
    return encode_page_token([view.created_at.isoformat(), view.subscription_id])


def after_token(token: str, violations: Violations) -> tuple[datetime, str] | None:
    if not token:
        return None
    try:
        position = decode_page_token(token)
        created, subscription_id = position
        return datetime.fromisoformat(created).astimezone(UTC), str(subscription_id)
    except (InvalidPageToken, TypeError, ValueError):
        violations.add("page_token", str(InvalidPageToken()))
        return None
