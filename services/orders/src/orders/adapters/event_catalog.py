"""The Order aggregate's events and the protobuf payloads that carry them on the log."""

from __future__ import annotations

from clinical.events.v1 import orders_events_pb2 as events
from clinical_platform.eventlog.codec import EventCatalog
from orders.domain.order import Order

ORDER_EVENTS: EventCatalog[Order] = EventCatalog(
    Order,
    {
        "OrderPlaced": events.OrderPlaced,
        "OrderSigned": events.OrderSigned,
        "OrderCancelled": events.OrderCancelled,
        "OrderResulted": events.OrderResulted,
    },
)
