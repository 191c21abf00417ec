"""Notifications as both channels carry them: the proto message (stream, ListEvents) and its
JSON form (a webhook body's "data"), or the FHIR notification Bundle a FHIR_R4_BACKPORT
subscription's webhook receives."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from google.protobuf import json_format

from clinical.events.v1 import results_events_pb2
from clinical.notify.v1 import notify_pb2 as pb
from clinical_platform.fhir_notifications import (
    FULL_RESOURCE,
    ID_ONLY,
    notification_bundle,
    topic_of,
)
from notify.adapters.webhooks import JSON, webhook_body
from notify.domain.notification import Notification, Observation
from notify.domain.subscription import Content, PayloadFormat, SubscriptionView

FHIR_JSON = "application/fhir+json"


def notification_message(notification: Notification) -> pb.Notification:
    message = pb.Notification(
        subscription_id=notification.subscription_id, sequence=notification.sequence,
        notification_id=notification.notification_id, type=notification.type,
        event_id=notification.event_id, patient_id=notification.patient_id,
        order_id=notification.order_id, result_id=notification.result_id,
        version=notification.version,
    )  # fmt: skip
    message.occurred_at.FromDatetime(notification.occurred_at)
    if (order := notification.order) is not None:
        details = message.order
        details.test_code, details.test_display = order.test_code, order.test_display
        details.priority, details.orderer, details.signer = (
            order.priority,
            order.orderer,
            order.signer,
        )
        details.cancelled_by = order.cancelled_by
        details.cancellation_reason = order.cancellation_reason
        if order.signed_at is not None:
            details.signed_at.FromDatetime(order.signed_at)
        message.order.SetInParent()
    if (result := notification.result) is not None:
        outcome = message.result
        outcome.observations.extend(_observation_message(o) for o in result.observations)
        outcome.performer, outcome.revised_by = result.performer, result.revised_by
        outcome.revision_reason, outcome.revision_kind = (
            result.revision_reason,
            result.revision_kind,
        )
        if result.effective_at is not None:
            outcome.effective_at.FromDatetime(result.effective_at)
        if result.issued_at is not None:
            outcome.issued_at.FromDatetime(result.issued_at)
        message.result.SetInParent()
    return message


def _observation_message(observation: Observation) -> results_events_pb2.ResultObservation:
    message = results_events_pb2.ResultObservation(
        code=observation.code, display=observation.display
    )
    if observation.quantity is not None:
        message.quantity.SetInParent()
        message.quantity.value, message.quantity.unit = observation.quantity
    if observation.coded is not None:
        message.coded.SetInParent()
        message.coded.system, message.coded.code, message.coded.display = observation.coded
    if observation.text is not None:
        message.text = observation.text
    if observation.reference_range is not None:
        low, high = observation.reference_range
        message.reference_range.SetInParent()
        if low is not None:
            message.reference_range.low = low
        if high is not None:
            message.reference_range.high = high
    if observation.interpretation is not None:
        message.interpretation = observation.interpretation
    return message


def as_json(notification: pb.Notification) -> dict[str, Any]:
    """The webhook body's "data": proto field names, defaults included, 64-bit ints as numbers."""
    data: dict[str, Any] = json_format.MessageToDict(
        notification, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    for name in ("sequence", "version"):
        data[name] = int(data[name])
    return data


def webhook_payload(
    view: SubscriptionView, notification: Notification, at: datetime
) -> tuple[str, str]:
    """A webhook POST's body and content type, in the subscription's payload format."""
    data = as_json(notification_message(notification))
    if view.payload_format is not PayloadFormat.FHIR_R4_BACKPORT:
        return webhook_body(notification.type, at, data), JSON
    bundle = notification_bundle(
        subscription_id=view.subscription_id, topic=topic_of(view.topics[0].value),
        notifications=[data], events_since_start=notification.sequence,
        payload=FULL_RESOURCE if view.content is Content.FULL else ID_ONLY,
    )  # fmt: skip
    return json.dumps(bundle, separators=(",", ":")), FHIR_JSON
