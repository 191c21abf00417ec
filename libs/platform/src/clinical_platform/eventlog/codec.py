"""Domain events to protobuf payloads and back, driven by field names and type hints.

An `EventCatalog` pairs each event class of one aggregate with the payload message that carries
it on the log. Conversion is generic: an event attribute goes into the payload field of the same
name, so a service writes a catalog entry per event and no conversion code. Supported attribute
types and their payload fields:

    str, int, float, bool, bytes    the same scalar
    UUID, Decimal, Enum (by value)  string (an int-valued Enum: an integer field)
    datetime (tz-aware)             google.protobuf.Timestamp, read back in UTC
    frozen dataclass                a sub-message, converted field by field
    tuple[X, ...] / list[X]         repeated X
    X | None                        a field with presence (a message or ``optional``); None = unset

Mismatched names or shapes are programming errors, raised when the catalog is built.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Generic, NamedTuple, TypeVar, cast
from uuid import UUID

from eventsourcing.domain import Aggregate, AggregateCreated, AggregateEvent, CanMutateAggregate
from eventsourcing.utils import get_topic
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

TAggregate = TypeVar("TAggregate", bound=Aggregate)
DomainEvent = CanMutateAggregate[UUID]
"""An aggregate's event, as ``Aggregate.collect_events()`` types it."""

# Envelope fields carry these (aggregate_id, aggregate_version, occurred_at); the created event's
# originator_topic is the catalog's aggregate class, so none of them belongs in a payload.
_ENVELOPE_ATTRIBUTES = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic"}
)
_TIMESTAMP = Timestamp.DESCRIPTOR.full_name


class UnknownEventTypeError(LookupError):
    """An event type with no catalog entry: a foreign or newer record, or a missing entry."""


class EventCatalog(Generic[TAggregate]):
    """The payload message of every recorded event class of one aggregate.

    ``EventCatalog(Order, {"OrderPlaced": order_events_pb2.OrderPlaced, ...}, schema_version=1)``
    keys are the names given to ``@event(...)``, which eventsourcing uses as the event class name.
    """

    def __init__(
        self,
        aggregate_cls: type[TAggregate],
        payloads: Mapping[str, type[Message]],
        *,
        schema_version: int = 1,
    ) -> None:
        self.aggregate_cls = aggregate_cls
        self.aggregate_type = aggregate_cls.__name__
        self.schema_version = schema_version
        self._event_classes: dict[str, type[AggregateEvent]] = {}
        self._payloads = dict(payloads)
        for event_type, message_cls in payloads.items():
            event_cls = getattr(aggregate_cls, event_type, None)
            if not (isinstance(event_cls, type) and issubclass(event_cls, AggregateEvent)):
                msg = f"{self.aggregate_type} defines no event class named {event_type!r}"
                raise TypeError(msg)
            _check_shape(event_cls, message_cls.DESCRIPTOR, f"{self.aggregate_type}.{event_type}")
            self._event_classes[event_type] = event_cls

    def event_type(self, event: DomainEvent) -> str:
        """The event's type name, e.g. ``OrderSigned``, after checking the catalog knows it."""
        event_type = type(event).__name__
        if self._event_classes.get(event_type) is not type(event):
            raise self._unknown(event_type)
        return event_type

    def payload_type(self, event_type: str) -> str:
        """The full protobuf name of the event type's payload, e.g. ``clinical.orders.v1.X``."""
        return self._payload_cls(event_type).DESCRIPTOR.full_name

    def to_payload(self, event: DomainEvent) -> Message:
        """The payload message carrying the event's own attributes."""
        payload = self._payload_cls(self.event_type(event))()
        _fill(payload, event)
        return payload

    def from_stored(
        self,
        aggregate_id: str,
        version: int,
        occurred_at: datetime,
        event_type: str,
        payload: bytes,
    ) -> DomainEvent:
        """Rebuild the domain event recorded with these envelope fields and payload bytes."""
        event_cls = self._event_classes.get(event_type)
        if event_cls is None:
            raise self._unknown(event_type)
        message = self._payloads[event_type].FromString(payload)
        attributes = _read(message, event_cls)
        if issubclass(event_cls, AggregateCreated):
            attributes["originator_topic"] = get_topic(self.aggregate_cls)
        return event_cls(
            originator_id=UUID(aggregate_id),
            originator_version=version,
            timestamp=occurred_at,
            **attributes,
        )

    def _payload_cls(self, event_type: str) -> type[Message]:
        try:
            return self._payloads[event_type]
        except KeyError:
            raise self._unknown(event_type) from None

    def _unknown(self, event_type: str) -> UnknownEventTypeError:
        return UnknownEventTypeError(
            f"{self.aggregate_type} catalog has no entry for event type {event_type!r}"
        )


def replay(
    catalog: EventCatalog[TAggregate],
    events: Iterable[DomainEvent],
    *,
    start: Aggregate | None = None,
) -> TAggregate | None:
    """Fold events into an aggregate, from nothing or from `start` (a snapshot, mutated in place).

    Returns None when there is neither a start nor an event. Each event's ``mutate`` checks that
    it belongs to the aggregate and is the next version, so a gap raises instead of skipping a
    fact. (eventsourcing's ``project_aggregate`` does the same plus a runtime protocol check per
    event, which costs ten times the fold itself on a hot path.)
    """
    if start is not None and not isinstance(start, catalog.aggregate_cls):
        msg = f"cannot replay {catalog.aggregate_type} events onto a {type(start).__name__}"
        raise TypeError(msg)
    aggregate: Any = start
    for event in events:
        aggregate = event.mutate(aggregate)
    return cast("TAggregate | None", aggregate)


class _Shape(NamedTuple):
    """An attribute's type hint taken apart: ``tuple[UUID, ...] | None`` is (True, tuple, UUID)."""

    optional: bool
    container: type[tuple[Any, ...]] | type[list[Any]] | None
    item: Any


@functools.cache
def _own_fields(cls: type) -> Mapping[str, _Shape]:
    # Cached: type hints are resolved once per class, not once per event.
    hints = typing.get_type_hints(cls)
    return {
        field.name: _shape(hints[field.name])
        for field in dataclasses.fields(cls)
        if field.name not in _ENVELOPE_ATTRIBUTES
    }


def _shape(hint: Any) -> _Shape:
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        optional, hint = len(members) < len(typing.get_args(hint)), members[0]
    container = typing.get_origin(hint)
    if container is tuple or container is list:
        return _Shape(optional, container, typing.get_args(hint)[0])
    return _Shape(optional, None, hint)


def _check_shape(cls: type, descriptor: Any, owner: str) -> None:
    attributes = _own_fields(cls)
    fields = descriptor.fields_by_name
    if set(attributes) != set(fields):
        msg = (
            f"{owner} and {descriptor.full_name} disagree: attributes without a payload field "
            f"{sorted(set(attributes) - set(fields))}, payload fields without an attribute "
            f"{sorted(set(fields) - set(attributes))}"
        )
        raise TypeError(msg)
    for name, (optional, container, item) in attributes.items():
        field = fields[name]
        where = f"{owner}.{name} ({field.full_name})"
        if (container is not None) != field.is_repeated:
            raise TypeError(f"{where}: tuple/list attributes need repeated fields and vice versa")
        if optional and not field.has_presence:
            raise TypeError(f"{where}: an optional attribute needs a field with presence")
        if field.message_type is None:
            if item is datetime or dataclasses.is_dataclass(item):
                raise TypeError(f"{where}: datetimes and dataclasses need message fields")
        elif field.message_type.full_name == _TIMESTAMP:
            if item is not datetime:
                raise TypeError(f"{where}: a Timestamp field needs a datetime attribute")
        elif isinstance(item, type) and dataclasses.is_dataclass(item):
            _check_shape(item, field.message_type, f"{owner}.{name}")
        else:
            raise TypeError(f"{where}: a message field needs a dataclass attribute")


def _fill(message: Message, source: object) -> None:
    source_cls: type = type(source)
    for name, shape in _own_fields(source_cls).items():
        value = getattr(source, name)
        if value is None:
            continue  # None is an unset field
        is_message = message.DESCRIPTOR.fields_by_name[name].message_type is not None
        if shape.container is not None:
            container = getattr(message, name)
            for item in value:
                if is_message:
                    _write_message(container.add(), item)
                else:
                    container.append(_to_scalar(item))
        elif is_message:
            _write_message(getattr(message, name), value)
        else:
            setattr(message, name, _to_scalar(value))


def _write_message(message: Message, value: Any) -> None:
    if isinstance(message, Timestamp):
        message.FromDatetime(value)
    else:
        _fill(message, value)


def _to_scalar(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID | Decimal):
        return str(value)
    return value


def _read(message: Message, cls: type) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for name, shape in _own_fields(cls).items():
        field = message.DESCRIPTOR.fields_by_name[name]
        if shape.container is not None:
            items = (_from_proto(item, shape.item) for item in getattr(message, name))
            attributes[name] = shape.container(items)
        elif field.has_presence and not message.HasField(name):
            attributes[name] = None
        else:
            attributes[name] = _from_proto(getattr(message, name), shape.item)
    return attributes


def _from_proto(value: Any, python_type: Any) -> Any:
    if isinstance(value, Timestamp):
        return value.ToDatetime(tzinfo=UTC)
    if isinstance(value, Message):
        return python_type(**_read(value, python_type))
    if python_type in (UUID, Decimal) or (
        isinstance(python_type, type) and issubclass(python_type, Enum)
    ):
        return python_type(value)
    return value
