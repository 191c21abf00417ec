"""Turns a numbered feed entry into the Notification both channels carry.

Authorization is re-checked here, at every delivery: a forgotten patient, or one outside the
owner's scope, gets a "withheld" notification with its number and nothing else. Full content
is decrypted from the kept envelope only when the decision allows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format

from clinical.events.v1 import orders_events_pb2, results_events_pb2
from clinical.events.v1.envelope_pb2 import Envelope
from clinical.notify.v1 import notify_pb2 as pb
from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.security.errors import PatientForgottenError
from notify.adapters.documents import FeedEntry, NotifyDocuments
from notify.domain.policy import decide
from notify.domain.subscription import Content, SubscriptionView

WITHHELD = "notification.withheld"


def notification_id(subscription_id: str, sequence: int) -> str:
    """The webhook-id of a notification: stable across retries and resends."""
    return f"msg_{subscription_id.replace('-', '')}_{sequence}"


def as_json(notification: pb.Notification) -> dict[str, Any]:
    """The webhook body's "data": proto field names, defaults included, 64-bit ints as numbers."""
    data: dict[str, Any] = json_format.MessageToDict(
        notification, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    for name in ("sequence", "version"):
        data[name] = int(data[name])
    return data


class NotificationRenderer:
    def __init__(self, documents: NotifyDocuments, cipher: EnvelopeCipher) -> None:
        self._documents = documents
        self._cipher = cipher

    async def render_all(
        self, subscription: SubscriptionView, entries: Sequence[FeedEntry]
    ) -> list[pb.Notification]:
        """Several notifications, reading their kept envelopes in one query."""
        envelopes = await self._documents.event_envelopes([e.event_id for e in entries])
        return [
            await self._render(subscription, entry, envelopes[entry.event_id]) for entry in entries
        ]

    async def render(self, subscription: SubscriptionView, entry: FeedEntry) -> pb.Notification:
        envelope_bytes = await self._documents.event_envelope(entry.event_id)
        return await self._render(subscription, entry, envelope_bytes)

    async def _render(
        self, subscription: SubscriptionView, entry: FeedEntry, envelope_bytes: bytes | None
    ) -> pb.Notification:
        decision = decide(
            subscription.owner, subscription.content, entry.patient_id,
            forgotten=envelope_bytes is None,
        )  # fmt: skip
        notification = pb.Notification(
            subscription_id=entry.subscription_id,
            sequence=entry.sequence,
            notification_id=notification_id(entry.subscription_id, entry.sequence),
        )
        notification.occurred_at.FromDatetime(entry.occurred_at)
        if decision.withheld is not None or envelope_bytes is None:
            notification.type = WITHHELD
            return notification
        notification.type = entry.topic.value
        notification.event_id = entry.event_id
        notification.patient_id = entry.patient_id
        notification.order_id = entry.order_id
        notification.result_id = entry.result_id
        notification.version = entry.version
        if decision.content is Content.FULL:
            try:
                await self._add_details(notification, Envelope.FromString(envelope_bytes))
            except PatientForgottenError:
                return pb.Notification(
                    subscription_id=entry.subscription_id, sequence=entry.sequence,
                    notification_id=notification.notification_id, type=WITHHELD,
                    occurred_at=notification.occurred_at,
                )  # fmt: skip
        return notification

    async def _add_details(self, notification: pb.Notification, envelope: Envelope) -> None:
        payload = await self._cipher.decrypt(envelope)
        facts = await self._documents.indexed(notification.order_id) or {}
        kind = envelope.event_type
        if kind in ("OrderSigned", "OrderCancelled"):
            order = notification.order
            order.test_code = str(facts.get("test_code", ""))
            order.test_display = str(facts.get("test_display", ""))
            order.priority = str(facts.get("priority", ""))
            order.orderer = str(facts.get("orderer", ""))
            if kind == "OrderSigned":
                signed = orders_events_pb2.OrderSigned.FromString(payload)
                order.signer = signed.signature.signer
                order.signed_at.CopyFrom(signed.signature.signed_at)
            else:
                cancelled = orders_events_pb2.OrderCancelled.FromString(payload)
                order.cancelled_by = cancelled.cancelled_by
                order.cancellation_reason = cancelled.reason
            return
        result = notification.result
        if kind == "ResultPosted":
            posted = results_events_pb2.ResultPosted.FromString(payload)
            result.observations.extend(posted.observations)
            result.performer = posted.performer
            result.effective_at.CopyFrom(posted.effective_at)
            result.issued_at.CopyFrom(posted.issued_at)
            return
        revision_cls = (
            results_events_pb2.ResultAmended
            if kind == "ResultAmended"
            else results_events_pb2.ResultCorrected
        )
        revised = revision_cls.FromString(payload)
        result.observations.extend(revised.observations)
        result.revised_by = revised.revision.revised_by
        result.revision_reason = revised.revision.reason
        result.revision_kind = "amendment" if kind == "ResultAmended" else "correction"
