"""Aggregate snapshots for the local store, in eventsourcing's own Snapshot and JSON formats.

A snapshot is a cache: losing one costs a replay, so the format may change between releases.
eventsourcing's `JSONTranscoder` knows UUID, Decimal and datetime; JSON itself would turn tuples
into lists and str-valued Enums into plain strings, and cannot hold dataclasses. Those three are
tagged before encoding so a restored aggregate equals the one that was snapshotted.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, Snapshot
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    StoredEvent,
    Transcoding,
    UUIDAsHex,
)
from eventsourcing.utils import get_topic, resolve_topic


def snapshot_to_bytes(aggregate: Aggregate) -> tuple[int, bytes]:
    """The aggregate's version and a snapshot of its state (pending events are left out)."""
    stored = _MAPPER.to_stored_event(Snapshot.take(aggregate))
    # The mapper keeps id, version and topic beside the state; a header line keeps them together.
    # JSON escapes newlines inside strings, so the first newline always ends the header.
    header = {
        "id": stored.originator_id,
        "version": stored.originator_version,
        "topic": stored.topic,
    }
    return stored.originator_version, _TRANSCODER.encode(header) + b"\n" + stored.state


def aggregate_from_snapshot(data: bytes) -> Aggregate:
    """The aggregate a `snapshot_to_bytes` result was taken from."""
    header, _, state = data.partition(b"\n")
    fields = _TRANSCODER.decode(header)
    stored = StoredEvent(fields["id"], fields["version"], fields["topic"], state)
    snapshot = _MAPPER.to_domain_event(stored)
    aggregate = snapshot.mutate(None) if isinstance(snapshot, Snapshot) else None
    if not isinstance(aggregate, Aggregate):
        msg = f"not an aggregate snapshot: {stored.topic}"
        raise TypeError(msg)
    return aggregate


@dataclasses.dataclass(frozen=True)
class _TupleItems:
    items: list[Any]


@dataclasses.dataclass(frozen=True)
class _EnumMember:
    member: Enum


@dataclasses.dataclass(frozen=True)
class _DataclassInstance:
    instance: Any


def _tagged(value: Any) -> Any:
    # Enum first: a StrEnum is also a str, which JSON would encode without asking.
    if isinstance(value, Enum):
        return _EnumMember(value)
    if isinstance(value, tuple):
        return _TupleItems([_tagged(item) for item in value])
    if isinstance(value, list):
        return [_tagged(item) for item in value]
    if isinstance(value, dict):
        return {key: _tagged(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _DataclassInstance(value)
    return value


class _TupleAsList(Transcoding):
    type = _TupleItems
    name = "tuple"

    def encode(self, obj: _TupleItems) -> list[Any]:
        return obj.items

    def decode(self, data: list[Any]) -> tuple[Any, ...]:
        return tuple(data)


class _EnumAsValue(Transcoding):
    type = _EnumMember
    name = "enum"

    def encode(self, obj: _EnumMember) -> dict[str, Any]:
        return {"topic": get_topic(type(obj.member)), "value": obj.member.value}

    def decode(self, data: dict[str, Any]) -> Enum:
        enum_cls: type[Enum] = resolve_topic(data["topic"])
        return enum_cls(data["value"])


class _DataclassAsFields(Transcoding):
    type = _DataclassInstance
    name = "dataclass"

    def encode(self, obj: _DataclassInstance) -> dict[str, Any]:
        fields = dataclasses.fields(obj.instance)
        return {
            "topic": get_topic(type(obj.instance)),
            "fields": {f.name: _tagged(getattr(obj.instance, f.name)) for f in fields if f.init},
        }

    def decode(self, data: dict[str, Any]) -> Any:
        return resolve_topic(data["topic"])(**data["fields"])


class _SnapshotTranscoder(JSONTranscoder):
    def __init__(self) -> None:
        super().__init__()
        for transcoding in (
            UUIDAsHex(),
            DecimalAsStr(),
            DatetimeAsISO(),
            _TupleAsList(),
            _EnumAsValue(),
            _DataclassAsFields(),
        ):
            self.register(transcoding)

    def encode(self, obj: Any) -> bytes:
        return super().encode(_tagged(obj))


_TRANSCODER = _SnapshotTranscoder()
# A Cipher can be passed here later to encrypt snapshots at rest, as the payloads will be.
_MAPPER: Mapper[UUID] = Mapper(transcoder=_TRANSCODER)
