"""The span contexts of events this process handled lately, by event id (bounded).

A webhook worker or a stream posts a notification long after (and in another task than) the
consumer span that matched its event; it looks the event up here to continue the same trace.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from opentelemetry.trace import SpanContext

# Enough for a few minutes of a busy replica; an older event's POST starts a trace of its own.
DEFAULT_CAPACITY = 10_000


@dataclass(frozen=True)
class HandledEvent:
    """Where an event's handling was traced, and when its record was written (ms, Kafka's)."""

    span_context: SpanContext
    record_timestamp_ms: int


class RecentTraces:
    """A bounded map, oldest first out."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._handled: OrderedDict[str, HandledEvent] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, event_id: str, span_context: SpanContext, timestamp_ms: int) -> None:
        with self._lock:
            self._handled[event_id] = HandledEvent(span_context, timestamp_ms)
            self._handled.move_to_end(event_id)
            while len(self._handled) > self._capacity:
                self._handled.popitem(last=False)

    def get(self, event_id: str) -> HandledEvent | None:
        with self._lock:
            return self._handled.get(event_id)


RECENT_TRACES = RecentTraces()
