"""The orders read model: one document per order, fed from the orders event topic.

Documents hold ids and codes as strings and instants as UTC datetimes::

    {_id, version, patient_id, status, test: {code, display}, test_code, priority,
     reasons: [{system, code}], orderer, placed_at,
     signature: {signer, signed_at, mfa}, cancellation: {cancelled_by, reason, cancelled_at},
     result_id, resulted_at, recorded_at,
     history: [{version, recorded_at, set: {the fields that version set}}]}

Each event sets only the fields it changes, through a version-guarded upsert, so a redelivered
or replayed event never moves a document backwards. Events become changes without a read, so
the runner writes each poll's batch in bulk. The same upsert pushes what the event set onto
``history`` (an order has a handful of versions), so any version, or the one current at an
instant, is the fold of its first entries: one read by ``_id``, rebuilt with the rest, and
gone with the rest when the patient is forgotten. ``test_code`` is the test's code at the top
level, where FerretDB can answer a filter on it from an index.
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
        "test_code": placed.test.code,
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

    # "A patient's orders, newest first", optionally by status or test.
    INDEXES = (
        IndexModel(
            [("patient_id", ASCENDING), ("placed_at", DESCENDING), ("_id", ASCENDING)],
            name="patient_placed",
        ),
        IndexModel(
            [("patient_id", ASCENDING), ("status", ASCENDING), ("placed_at", DESCENDING)],
            name="patient_status_placed",
        ),
        IndexModel(
            [("patient_id", ASCENDING), ("test_code", ASCENDING), ("placed_at", DESCENDING)],
            name="patient_test_placed",
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
        version, recorded_at = envelope.aggregate_version, instant(envelope.recorded_at)
        fields = change(envelope.payload)
        entry = {"version": version, "recorded_at": recorded_at, "set": fields}
        current = {**fields, "recorded_at": recorded_at}
        if version == 1:  # inserted whole (see VersionedChange.creates)
            return [VersionedChange(self.collection, envelope.aggregate_id, version,
                                    {**current, "history": [entry]})]  # fmt: skip
        return [
            VersionedChange(
                self.collection, envelope.aggregate_id, version, current,
                extra_update={"$push": {"history": entry}},
            )
        ]  # fmt: skip

    async def apply(self, envelope: Envelope, db: AsyncDatabase[Any]) -> None:
        """Apply one event (the runner batches `changes` instead)."""
        await apply_changes(db, self.changes(envelope))
