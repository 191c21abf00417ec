"""Requests to application commands and views to responses, with every field checked."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from clinical.notify.v1 import notify_pb2 as pb
from clinical_platform.validation import FieldViolation, Violations
from notify.adapters.documents import Delivery, DeliveryState
from notify.application import CreateSubscription, Status
from notify.domain.subscription import Content, Filter, SubscriptionView, Topic

DEFAULT_SUBSCRIPTIONS_PAGE = 50
MAX_SUBSCRIPTIONS_PAGE = 500
DEFAULT_EVENTS_PAGE = 100
MAX_EVENTS_PAGE = 1000

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
_STATES = {
    DeliveryState.ACTIVE: pb.DELIVERY_STATE_ACTIVE,
    DeliveryState.ERROR: pb.DELIVERY_STATE_ERROR,
    DeliveryState.OFF: pb.DELIVERY_STATE_OFF,
}


def create_subscription(
    request: pb.CreateSubscriptionRequest, violations: Violations
) -> CreateSubscription:
    violations.request_id(request.request_id)
    topics = []
    for index, number in enumerate(request.topics):
        topic = _TOPICS.get(number)
        if topic is None:
            violations.append(FieldViolation(f"topics[{index}]", "is not a known topic"))
        else:
            topics.append(topic)
    if not request.topics:
        violations.append(FieldViolation("topics", "must name at least one topic"))
    content = _CONTENTS.get(request.content)
    if content is None:
        violations.append(FieldViolation("content", "must be ID_ONLY or FULL"))
    f = request.filter
    event_filter = Filter(
        patient_ids=tuple(f.patient_ids), orderers=tuple(f.orderers),
        loinc_codes=tuple(f.loinc_codes), priorities=tuple(f.priorities),
        abnormal_only=f.abnormal_only,
    )  # fmt: skip
    violations.extend(event_filter.problems())
    if request.HasField("webhook") and not request.webhook.url:
        violations.append(FieldViolation("webhook.url", "is required with a webhook"))
    return CreateSubscription(
        topics=topics, event_filter=event_filter, content=content or Content.ID_ONLY,
        webhook_url=request.webhook.url,
    )  # fmt: skip


def subscription_message(view: SubscriptionView) -> pb.Subscription:
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
        version=view.version,
    )  # fmt: skip
    if view.webhook_url:
        message.webhook.url = view.webhook_url
    message.created_at.FromDatetime(view.created_at)
    return message


def status_message(status: Status) -> pb.GetStatusResponse:
    delivery: Delivery = status.delivery
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
    key = f"{view.created_at.isoformat()}|{view.subscription_id}"
    return base64.urlsafe_b64encode(key.encode()).decode()


def after_token(token: str, violations: Violations) -> tuple[datetime, str] | None:
    if not token:
        return None
    try:
        created, subscription_id = base64.urlsafe_b64decode(token).decode().split("|")
        return datetime.fromisoformat(created).astimezone(UTC), subscription_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        violations.append(FieldViolation("page_token", "is not a token this service issued"))
        return None
