"""What notify reads from the orders and results logs: index facts and matchable events.

Order events other than OrderPlaced carry nothing a filter looks at, so the facts of an order
(patient, orderer, priority, test) are learned from OrderPlaced and kept in ``notify_index``;
results copy their order's facts and add their own observation codes and interpretations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

from clinical.events.v1 import orders_events_pb2, results_events_pb2
from clinical.events.v1.envelope_pb2 import Envelope
from notify.domain.events import ABNORMAL, ClinicalEvent
from notify.domain.subscription import Topic

ORDER_PLACED = "OrderPlaced"
RESULT_POSTED = "ResultPosted"
REVISIONS = frozenset({"ResultAmended", "ResultCorrected"})
# Event types whose payload must be read (decrypted) to index or match them.
READ_PAYLOAD = frozenset({ORDER_PLACED, RESULT_POSTED, *REVISIONS})
TOPIC_OF = {
    "OrderSigned": Topic.ORDER_SIGNED,
    "OrderCancelled": Topic.ORDER_CANCELLED,
    RESULT_POSTED: Topic.RESULT_POSTED,
    "ResultAmended": Topic.RESULT_AMENDED,
    "ResultCorrected": Topic.RESULT_AMENDED,
}
_ORDER_FACTS = ("orderer", "priority", "test_code", "test_display")


@dataclass(frozen=True)
class IndexUpdate:
    aggregate_id: str
    version: int
    fields: dict[str, Any]


def index_update(plain: Envelope, order: dict[str, Any] | None) -> IndexUpdate | None:
    """What the (decrypted) event adds to ``notify_index``; ``order`` is the result's order."""
    version = plain.aggregate_version
    if plain.event_type == ORDER_PLACED:
        placed = orders_events_pb2.OrderPlaced.FromString(plain.payload)
        fields = {
            "kind": "order", "patient_id": plain.patient_id, "order_id": plain.aggregate_id,
            "orderer": placed.orderer, "priority": placed.priority,
            "test_code": placed.test.code, "test_display": placed.test.display,
        }  # fmt: skip
        return IndexUpdate(plain.aggregate_id, version, fields)
    if plain.event_type == RESULT_POSTED:
        posted = results_events_pb2.ResultPosted.FromString(plain.payload)
        facts = {name: (order or {}).get(name, "") for name in _ORDER_FACTS}
        fields = {
            "kind": "result", "patient_id": plain.patient_id, "order_id": posted.order_id,
            **facts,
        }  # fmt: skip
        return IndexUpdate(plain.aggregate_id, version, fields)
    return None


def clinical_event(
    envelope: Envelope, plain: Envelope | None, facts: dict[str, Any] | None
) -> ClinicalEvent | None:
    """The matchable event, or None for an event type no topic covers.

    ``plain`` is the decrypted envelope for types in READ_PAYLOAD; ``facts`` the index
    document of the order (order events) or of the result (result events).
    """
    topic = TOPIC_OF.get(envelope.event_type)
    if topic is None:
        return None
    facts = facts or {}
    is_result = topic in (Topic.RESULT_POSTED, Topic.RESULT_AMENDED)
    codes = {facts["test_code"]} if facts.get("test_code") else set()
    abnormal = False
    if is_result and plain is not None:
        observations = _observations(plain)
        codes |= {o.code for o in observations}
        abnormal = any(
            o.HasField("interpretation") and o.interpretation in ABNORMAL for o in observations
        )
    return ClinicalEvent(
        topic=topic,
        event_id=envelope.event_id,
        patient_id=envelope.patient_id,
        order_id=str(facts.get("order_id", "")) if is_result else envelope.aggregate_id,
        result_id=envelope.aggregate_id if is_result else "",
        version=envelope.aggregate_version,
        occurred_at=envelope.occurred_at.ToDatetime(tzinfo=UTC),
        orderer=str(facts.get("orderer", "")),
        priority=str(facts.get("priority", "")),
        loinc_codes=frozenset(codes),
        abnormal=abnormal,
    )


def _observations(plain: Envelope) -> list[results_events_pb2.ResultObservation]:
    if plain.event_type == RESULT_POSTED:
        return list(results_events_pb2.ResultPosted.FromString(plain.payload).observations)
    if plain.event_type == "ResultAmended":
        return list(results_events_pb2.ResultAmended.FromString(plain.payload).observations)
    if plain.event_type == "ResultCorrected":
        return list(results_events_pb2.ResultCorrected.FromString(plain.payload).observations)
    return []


def posted_order_id(plain: Envelope) -> str:
    """The order a (decrypted) ResultPosted answers."""
    return results_events_pb2.ResultPosted.FromString(plain.payload).order_id
