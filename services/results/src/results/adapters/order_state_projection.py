"""The results service's own view of orders: id, patient and state, from the orders topic.

    {_id: order id, version, patient_id, status: draft | signed | resulted | cancelled}

PostResult decides on this view; results never calls the orders service. The view lags the
orders topic by the projection's delay, which a caller bridges with ``order_min_version``.
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from clinical.events.v1 import orders_events_pb2 as order_events
from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.projections import TopicProjection, VersionedChange, apply_changes

logger = logging.getLogger(__name__)

ORDER_STATES_COLLECTION = "order_states"
ORDER_AGGREGATE_TYPE = "Order"
_STATUS_AFTER = {
    "OrderSigned": "signed",
    "OrderCancelled": "cancelled",
    "OrderResulted": "resulted",
}


class OrderStatesProjection(TopicProjection):
    """Projects Order events (read as protobuf payloads only) into ``order_states``."""

    # Nothing beyond the primary key: orders are only ever looked up by id here.

    def __init__(
        self, *, name: str, orders_topic: str, collection: str = ORDER_STATES_COLLECTION
    ) -> None:
        super().__init__(name=name, topic=orders_topic, collection=collection)

    def changes(self, envelope: Envelope) -> list[VersionedChange]:
        """One event's change of the order's state; none for other events."""
        if envelope.aggregate_type != ORDER_AGGREGATE_TYPE:
            return []
        if envelope.event_type == "OrderPlaced":
            placed = order_events.OrderPlaced.FromString(envelope.payload)
            fields = {"patient_id": placed.patient_id, "status": "draft"}
        elif envelope.event_type in _STATUS_AFTER:
            fields = {"status": _STATUS_AFTER[envelope.event_type]}
        else:
            logger.info(
                "event skipped by the order states projection",
                extra={"event_type": envelope.event_type, "event_id": envelope.event_id},
            )
            return []
        return [
            VersionedChange(
                self.collection, envelope.aggregate_id, envelope.aggregate_version, fields
            )
        ]

    async def apply(self, envelope: Envelope, db: AsyncDatabase[Any]) -> None:
        """Apply one event (the runner batches `changes` instead)."""
        await apply_changes(db, self.changes(envelope))
