"""Turns numbered feed entries into the Notifications both channels carry.

Authorization is re-checked here, at every delivery: a forgotten patient, or one outside the
owner's scope, gets a "withheld" notification with its number and nothing else. Full content
is decrypted from the kept envelope only when the decision allows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from clinical.events.v1 import orders_events_pb2, results_events_pb2
from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.security.errors import PatientForgottenError
from notify.domain.feed import FeedEntry
from notify.domain.notification import (
    WITHHELD,
    Notification,
    Observation,
    OrderDetails,
    ResultDetails,
)
from notify.domain.subscription import Content, SubscriptionView
from notify.policy import decide
from notify.ports import EventIndex, KeptEvents


class NotificationRenderer:
    def __init__(self, kept: KeptEvents, index: EventIndex, cipher: EnvelopeCipher) -> None:
        self._kept = kept
        self._index = index
        self._cipher = cipher

    async def render_all(
        self,
        subscription: SubscriptionView,
        entries: Sequence[FeedEntry],
        envelopes: Mapping[str, bytes | None] | None = None,
    ) -> list[Notification]:
        """Several notifications, reading their kept envelopes in one query (unless given)."""
        if not entries:
            return []
        if envelopes is None:
            envelopes = await self._kept.envelopes([e.event_id for e in entries])
        return [
            await self._render(subscription, entry, envelopes[entry.event_id]) for entry in entries
        ]

    async def _render(
        self, subscription: SubscriptionView, entry: FeedEntry, envelope_bytes: bytes | None
    ) -> Notification:
        decision = decide(
            subscription.owner, subscription.content, entry.patient_id,
            forgotten=envelope_bytes is None, event_filter=subscription.event_filter,
        )  # fmt: skip
        withheld = Notification(
            subscription_id=entry.subscription_id, sequence=entry.sequence, type=WITHHELD,
            occurred_at=entry.occurred_at,
        )  # fmt: skip
        if decision.withheld is not None or envelope_bytes is None:
            return withheld
        notification = Notification(
            subscription_id=entry.subscription_id, sequence=entry.sequence,
            type=entry.topic.value, occurred_at=entry.occurred_at, event_id=entry.event_id,
            patient_id=entry.patient_id, order_id=entry.order_id, result_id=entry.result_id,
            version=entry.version,
        )  # fmt: skip
        if decision.content is not Content.FULL:
            return notification
        try:
            return await self._with_details(notification, Envelope.FromString(envelope_bytes))
        except PatientForgottenError:
            return withheld

    async def _with_details(self, notification: Notification, envelope: Envelope) -> Notification:
        payload = await self._cipher.decrypt(envelope)
        facts = await self._index.indexed(notification.order_id) or {}
        kind = envelope.event_type
        if kind in ("OrderSigned", "OrderCancelled"):
            order = OrderDetails(
                test_code=str(facts.get("test_code", "")),
                test_display=str(facts.get("test_display", "")),
                priority=str(facts.get("priority", "")),
                orderer=str(facts.get("orderer", "")),
            )
            if kind == "OrderSigned":
                signed = orders_events_pb2.OrderSigned.FromString(payload)
                order = replace(order, signer=signed.signature.signer,
                                 signed_at=_time(signed.signature.signed_at))  # fmt: skip
            else:
                cancelled = orders_events_pb2.OrderCancelled.FromString(payload)
                order = replace(order, cancelled_by=cancelled.cancelled_by,
                                 cancellation_reason=cancelled.reason)  # fmt: skip
            return replace(notification, order=order)
        if kind == "ResultPosted":
            posted = results_events_pb2.ResultPosted.FromString(payload)
            result = ResultDetails(
                observations=tuple(_observation(o) for o in posted.observations),
                performer=posted.performer, effective_at=_time(posted.effective_at),
                issued_at=_time(posted.issued_at),
            )  # fmt: skip
            return replace(notification, result=result)
        revised: results_events_pb2.ResultAmended | results_events_pb2.ResultCorrected
        if kind == "ResultAmended":
            revised, revision_kind = (
                results_events_pb2.ResultAmended.FromString(payload),
                "amendment",
            )
        else:
            revised = results_events_pb2.ResultCorrected.FromString(payload)
            revision_kind = "correction"
        result = ResultDetails(
            observations=tuple(_observation(o) for o in revised.observations),
            revised_by=revised.revision.revised_by, revision_reason=revised.revision.reason,
            revision_kind=revision_kind,
        )  # fmt: skip
        return replace(notification, result=result)


def _observation(observation: results_events_pb2.ResultObservation) -> Observation:
    value = observation.WhichOneof("value")
    reference = None
    if observation.HasField("reference_range"):
        low, high = observation.reference_range.low, observation.reference_range.high
        reference = (
            low if observation.reference_range.HasField("low") else None,
            high if observation.reference_range.HasField("high") else None,
        )
    return Observation(
        code=observation.code, display=observation.display,
        quantity=(
            (observation.quantity.value, observation.quantity.unit)
            if value == "quantity" else None
        ),
        coded=(
            (observation.coded.system, observation.coded.code, observation.coded.display)
            if value == "coded" else None
        ),
        text=observation.text if value == "text" else None,
        reference_range=reference,
        interpretation=(
            observation.interpretation if observation.HasField("interpretation") else None
        ),
    )  # fmt: skip


def _time(timestamp: Timestamp) -> datetime:
    return timestamp.ToDatetime(tzinfo=UTC)
