"""Test helpers for traces and metrics: consumed records as the consumer spans read them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from clinical.events.v1 import envelope_pb2

TOPIC = "clinical.orders.events.v1"


@dataclass
class Record:
    """A consumed Kafka record, as the consumer spans read it."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def an_envelope() -> envelope_pb2.Envelope:
    return envelope_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="OrderSigned",
        aggregate_type="Order",
        aggregate_id=str(uuid.uuid4()),
        source="//clinical/orders",
    )


Publish = Callable[..., tuple[Record, envelope_pb2.Envelope]]
"""``publish(offset=7)``: an envelope appended under a producer span, and its record."""
