"""Hostile requests, generated from a proto's descriptors: what a careless or malicious client
sends to every RPC.

`hostile_requests(request_class)` lists, for one request message: bytes that are no protobuf,
the empty message, every string (and bytes) field at 64 KiB, every enum field at a number the
proto does not define, every repeated field with 2,000 values and every Timestamp outside the
years 0001-9999. Each comes with the field path a refusal must name (as
`clinical_platform.limits` names it: ``demographics.identifiers[0].system``), so a test can
tell the limit that refused it from any other refusal.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor, FileDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

HUGE_CHARS = 64 * 1024
MANY_VALUES = 2000
UNKNOWN_ENUM_NUMBER = 999_999
# 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z in seconds since the epoch.
_EARLIEST_SECONDS, _LATEST_SECONDS = -62_135_596_800, 253_402_300_799
_TIMESTAMP = "google.protobuf.Timestamp"

GARBAGE = (
    # A varint that never ends: the wire format is corrupt from the first byte.
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
    # Field 1, length-delimited, claiming 1,000 bytes and holding none.
    b"\x0a\xe8\x07",
)
"""Bytes that are no message of any type."""
_NOT_UTF8 = b"\xff\xfe\xfd\xfc\xfb"


@dataclass(frozen=True)
class HostileRequest:
    """One hostile request: what it is, its bytes, and the field a refusal must name."""

    case: str
    body: bytes
    field: str = ""
    """The path a limit refusal names; "" for garbage and the empty message."""
    must_refuse: bool = True
    """False for the empty message: it may be a valid request (a list of everything)."""


@dataclass
class ServedPlatform:
    """Services under test: a channel to each by proto service name, and where they write."""

    channels: dict[str, grpc.aio.Channel]
    """A channel to the server hosting each proto service, by the service's full name."""
    event_topics: list[str]
    """Every event topic the services append to (refused calls must append nothing)."""
    access_topic: str
    kafka: str
    staff: tuple[tuple[str, str], ...]
    """Call metadata with a token every policy lets through, so requests reach validation."""


def single_request_methods(proto_file: FileDescriptor) -> list[tuple[str, MethodDescriptor]]:
    """Every method of every service in ``proto_file`` that takes one request (unary and
    server-streaming), with its service's full name."""
    return [
        (service.full_name, method)
        for service in proto_file.services_by_name.values()
        for method in service.methods
        if not method.client_streaming
    ]


def request_class(method: MethodDescriptor) -> type[Message]:
    return GetMessageClass(method.input_type)


def hostile_requests(message_class: type[Message]) -> list[HostileRequest]:
    """Every hostile variant of ``message_class`` (see the module's docstring)."""
    found = [HostileRequest(f"garbage-{n}", body) for n, body in enumerate(GARBAGE)]
    strings = [
        field for field in message_class.DESCRIPTOR.fields
        if field.type == FieldDescriptor.TYPE_STRING
    ]  # fmt: skip
    if strings:
        # The first string field, length-delimited, holding bytes that are not UTF-8.
        tag = bytes([strings[0].number << 3 | 2]) if strings[0].number < 16 else b""
        if tag:
            body = tag + bytes([len(_NOT_UTF8)]) + _NOT_UTF8
            found.append(HostileRequest(f"not utf-8 {strings[0].name}", body))
    found.append(HostileRequest("empty", b"", must_refuse=False))
    for path in _field_paths(message_class.DESCRIPTOR, ()):
        found += list(_variants(message_class, path))
    return found


def _field_paths(descriptor: Any, seen: tuple[str, ...]) -> Iterator[tuple[FieldDescriptor, ...]]:
    """Every field reachable from ``descriptor``, as the chain of fields leading to it."""
    for field in descriptor.fields:
        yield (field,)
        nested = field.message_type
        if (
            nested is not None
            and nested.full_name != _TIMESTAMP
            and nested.full_name not in seen
            and not nested.GetOptions().map_entry
        ):
            for rest in _field_paths(nested, (*seen, descriptor.full_name)):
                yield (field, *rest)


def _variants(
    message_class: type[Message], path: Sequence[FieldDescriptor]
) -> Iterator[HostileRequest]:
    leaf = path[-1]
    name = _path_name(path)
    if leaf.is_repeated:
        message, values = _reach(message_class, path)
        _fill(values, leaf, MANY_VALUES)
        yield HostileRequest(f"repeated {name}", message.SerializeToString(), name)
    if leaf.type == FieldDescriptor.TYPE_STRING:
        yield _with_leaf(message_class, path, "huge string", "x" * HUGE_CHARS)
    elif leaf.type == FieldDescriptor.TYPE_BYTES:
        yield _with_leaf(message_class, path, "huge bytes", b"x" * HUGE_CHARS)
    elif leaf.enum_type is not None:
        if UNKNOWN_ENUM_NUMBER in leaf.enum_type.values_by_number:
            raise ValueError(f"{name} defines {UNKNOWN_ENUM_NUMBER}: pick another unknown number")
        yield _with_leaf(message_class, path, "unknown enum", UNKNOWN_ENUM_NUMBER)
    elif leaf.message_type is not None and leaf.message_type.full_name == _TIMESTAMP:
        for label, seconds, nanos in (
            ("after 9999", _LATEST_SECONDS + 1, 0),
            ("before 0001", _EARLIEST_SECONDS - 1, 0),
            ("negative nanos", 0, -1),
        ):
            timestamp = GetMessageClass(leaf.message_type)(seconds=seconds, nanos=nanos)
            yield _with_leaf(message_class, path, f"timestamp {label}", timestamp)


def _with_leaf(
    message_class: type[Message], path: Sequence[FieldDescriptor], case: str, value: object
) -> HostileRequest:
    message, parent_values = _reach(message_class, path)
    leaf = path[-1]
    name = _path_name(path)
    if leaf.is_repeated:
        if isinstance(value, Message):
            parent_values.add().CopyFrom(value)
        else:
            parent_values.append(value)
        name += "[0]"
    elif isinstance(value, Message):
        parent_values.CopyFrom(value)
    else:
        setattr(parent_values, leaf.name, value)
    return HostileRequest(f"{case} {name}", message.SerializeToString(), name)


def _reach(message_class: type[Message], path: Sequence[FieldDescriptor]) -> tuple[Message, Any]:
    """A new message with every message on ``path`` present, and what holds the leaf: its
    repeated container, its (singular) message, or the message it is a scalar field of."""
    root = message_class()
    current: Message = root
    for field in path[:-1]:
        current = (
            getattr(current, field.name).add()
            if field.is_repeated
            else getattr(current, field.name)
        )
    leaf = path[-1]
    if leaf.is_repeated or leaf.message_type is not None:
        return root, getattr(current, leaf.name)
    return root, current


def _fill(values: Any, field: FieldDescriptor, count: int) -> None:
    if field.message_type is not None:
        for _ in range(count):
            values.add()
        return
    sample: object = {
        FieldDescriptor.TYPE_STRING: "x",
        FieldDescriptor.TYPE_BYTES: b"x",
        FieldDescriptor.TYPE_BOOL: True,
        FieldDescriptor.TYPE_ENUM: max(field.enum_type.values_by_number) if field.enum_type else 0,
    }.get(field.type, 1)
    values.extend([sample] * count)


def _path_name(path: Sequence[FieldDescriptor]) -> str:
    """The path as `clinical_platform.limits` names it: ``a[0].b`` through repeated messages."""
    parts = [f"{field.name}[0]" if field.is_repeated else field.name for field in path[:-1]]
    return ".".join([*parts, path[-1].name])
