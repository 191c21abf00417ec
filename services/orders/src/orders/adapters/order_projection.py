"""The orders read model: one document per order, fed from the orders event topic.

Documents hold ids and codes as strings and instants as UTC datetimes::

    {_id, version, patient_id, status, test: {code, display}, priority,
     reasons: [{system, code}], orderer, placed_at,
     signature: {signer, signed_at, mfa}, cancellation: {cancelled_by, reason, cancelled_at},
     result_id, resulted_at}

Each event sets only the fields it changes, through a version-guarded upsert, so a redelivered
or replayed event never moves a document backwards. Events become changes without a read, so
the runner writes each poll's batch in bulk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from clinical.events.v1 import orders_events_pb2 as events
from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.projections import TopicProjection, VersionedChange, apply_changes

logger = logging.getLogger(__name__)

ORDERS_COLLECTION = "orders"
AGGREGATE_TYPE = "Order"

Fields = dict[str, Any]


def instant(timestamp: Timestamp) -> datetime:
    return timestamp.ToDatetime(tzinfo=UTC)


def _placed(payload: bytes) -> Fields:
    placed = events.OrderPlaced.FromString(payload)
    return {
        "patient_id": placed.patient_id,
        "status": "draft",
        "test": {"code": placed.test.code, "display": placed.test.display},
        "priority": placed.priority,
        "reasons": [{"system": r.system, "code": r.code} for r in placed.reasons],
        "orderer": placed.orderer,
        "placed_at": instant(placed.placed_at),
    }


def _signed(payload: bytes) -> Fields:
    signature = events.OrderSigned.FromString(payload).signature
    return {
        "status": "signed",
        "signature": {
            "signer": signature.signer,
            "signed_at": instant(signature.signed_at),
            "mfa": signature.mfa,
        },
    }


def _cancelled(payload: bytes) -> Fields:
    cancelled = events.OrderCancelled.FromString(payload)
    return {
        "status": "cancelled",
        "cancellation": {
            "cancelled_by": cancelled.cancelled_by,
            "reason": cancelled.reason,
            "cancelled_at": instant(cancelled.cancelled_at),
        },
    }


def _resulted(payload: bytes) -> Fields:
    resulted = events.OrderResulted.FromString(payload)
    return {
        "status": "resulted",
        "result_id": resulted.result_id,
        "resulted_at": instant(resulted.resulted_at),
    }


_CHANGES: dict[str, Callable[[bytes], Fields]] = {
    "OrderPlaced": _placed,
    "OrderSigned": _signed,
    "OrderCancelled": _cancelled,
    "OrderResulted": _resulted,
}


class OrdersProjection(TopicProjection):
    """Projects Order events into the ``orders`` collection."""

    # "A patient's orders, newest first", optionally by status.
    INDEXES = (
        IndexModel(
            [("patient_id", ASCENDING), ("placed_at", DESCENDING), ("_id", ASCENDING)],
            name="patient_placed",
        ),
        IndexModel(
            [("patient_id", ASCENDING), ("status", ASCENDING), ("placed_at", DESCENDING)],
            name="patient_status_placed",
        ),
    )

    def __init__(self, *, name: str, topic: str, collection: str = ORDERS_COLLECTION) -> None:
        super().__init__(name=name, topic=topic, collection=collection)

    def changes(self, envelope: Envelope) -> list[VersionedChange]:
        """One event's change; none for events of other aggregates or unknown types."""
        change = _CHANGES.get(envelope.event_type)
        if envelope.aggregate_type != AGGREGATE_TYPE or change is None:
            # A tolerant reader: a newer event type must not stop the read model.
            logger.info(
                "event skipped by the orders projection",
                extra={"event_type": envelope.event_type, "event_id": envelope.event_id},
            )
            return []
        fields = change(envelope.payload)
        return [
            VersionedChange(
                self.collection, envelope.aggregate_id, envelope.aggregate_version, fields
            )
        ]

    async def apply(self, envelope: Envelope, db: AsyncDatabase[Any]) -> None:
        """Apply one event (the runner batches `changes` instead)."""
        await apply_changes(db, self.changes(envelope))
