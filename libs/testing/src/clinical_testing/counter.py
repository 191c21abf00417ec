"""A minimal aggregate for tests and benchmarks of the append path.

Its payloads are protobuf well-known types, so it needs no protos of its own: a created event
carrying a ``value`` string (``StringValue``) and an increment with no fields (``Empty``).
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from google.protobuf.empty_pb2 import Empty
from google.protobuf.wrappers_pb2 import StringValue

from clinical_platform.eventlog.codec import EventCatalog


class Counter(Aggregate):
    """Counts increments; ``value`` names it."""

    # An ``id`` parameter makes eventsourcing use the caller's id instead of a random one: the
    # repository decides ids, because they decide the partition.
    @event("CounterOpened")
    def __init__(self, id: UUID, value: str) -> None:
        self.value = value
        self.count = 0

    @event("CounterIncremented")
    def increment(self) -> None:
        self.count += 1


COUNTER_EVENTS: EventCatalog[Counter] = EventCatalog(
    Counter, {"CounterOpened": StringValue, "CounterIncremented": Empty}
)


def open_or_increment(counter_id: UUID) -> Callable[[Counter | None], Counter]:
    """The benchmark's command: create the counter on first use, increment it afterwards."""

    def command(counter: Counter | None) -> Counter:
        if counter is None:
            return Counter(id=counter_id, value="bench")
        counter.increment()
        return counter

    return command
