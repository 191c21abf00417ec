"""Hypothesis strategies for protobuf requests, built from their descriptors.

`requests(SomeRequest)` draws messages whose every field may hold anything its type allows:
short and very long strings (canonical UUIDs among them, so parsing goes past the id checks),
numbers across their whole width, enum numbers the proto does not define, Timestamps far
outside 0001-9999, and repeated fields from empty to beyond their caps. What translators must
do with any of them: parse it, or raise `InvalidRequest`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from clinical_platform.validation import InvalidRequest

T = TypeVar("T")

FUZZ = settings(
    max_examples=60,
    deadline=None,  # the first examples pay for imports and warm-up
    database=None,  # no .hypothesis/ folder in the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
"""The settings of a translator fuzz test: modest, so ``make test-unit`` stays fast."""

_TIMESTAMP = "google.protobuf.Timestamp"
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
# Lengths just past the caps of `clinical_platform.limits`, and far past them.
_LONG_LENGTHS = (129, 201, 255, 1025, 2049, 4097, 70_000)


def parsed_or_refused(parse: Callable[[], T]) -> T | None:
    """What ``parse`` returns, or None when it refuses with `InvalidRequest`; any other
    exception fails the example."""
    try:
        return parse()
    except InvalidRequest:
        return None


def texts() -> st.SearchStrategy[str]:
    """Any string a client may send: short text, UUIDs (canonical and not), long runs."""
    return st.one_of(
        st.text(max_size=24),
        st.uuids().map(str),
        st.uuids().map(lambda value: str(value).upper()),
        st.sampled_from(_LONG_LENGTHS).map(lambda length: "x" * length),
        st.sampled_from(_LONG_LENGTHS).map(lambda length: "a@" + "." * length + "@"),
        st.just(str(uuid.UUID(int=0))),
    )


def requests(message_class: type[Message], *, depth: int = 3) -> st.SearchStrategy[Message]:
    """Messages of ``message_class`` with any values in any of their fields."""
    return _messages(message_class.DESCRIPTOR, depth)


def _messages(descriptor: Any, depth: int) -> st.SearchStrategy[Message]:
    message_class = GetMessageClass(descriptor)
    if descriptor.full_name == _TIMESTAMP:
        return st.builds(
            message_class,
            seconds=st.integers(-(2**63), 2**63 - 1) | st.integers(-(10**11), 3 * 10**11),
            nanos=st.integers(-(2**31), 2**31 - 1) | st.integers(0, 999_999_999),
        )
    fields = {
        field.name: st.none() | _field_values(field, depth)
        for field in descriptor.fields
        if depth > 0 or field.message_type is None
    }
    return st.fixed_dictionaries(fields).map(lambda values: _build(message_class, values))


def _field_values(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    single = _single_values(field, depth)
    if not field.is_repeated:
        return single
    many_defaults = st.integers(95, 1100).map(lambda count: [_zero(field)] * count)
    return st.lists(single, max_size=3) | many_defaults


def _single_values(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        return _messages(field.message_type, depth - 1)
    if field.enum_type is not None:
        known = sorted(field.enum_type.values_by_number)
        return st.sampled_from(known) | st.integers(-(2**31), 2**31 - 1)
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        return st.integers(low, high) | st.integers(0, 300)
    return {
        FieldDescriptor.TYPE_STRING: texts(),
        FieldDescriptor.TYPE_BYTES: st.binary(max_size=24) | st.just(b"x" * 5000),
        FieldDescriptor.TYPE_BOOL: st.booleans(),
        FieldDescriptor.TYPE_DOUBLE: st.floats(),
        FieldDescriptor.TYPE_FLOAT: st.floats(width=32),
    }[kind]


def _zero(field: FieldDescriptor) -> Any:
    if field.message_type is not None:
        return GetMessageClass(field.message_type)()
    return {
        FieldDescriptor.TYPE_STRING: "",
        FieldDescriptor.TYPE_BYTES: b"",
        FieldDescriptor.TYPE_BOOL: False,
    }.get(field.type, 0)


def _build(message_class: type[Message], values: dict[str, Any]) -> Message:
    message = message_class()
    for name, value in values.items():
        if value is None:
            continue
        field = message_class.DESCRIPTOR.fields_by_name[name]
        if field.is_repeated:
            getattr(message, name).extend(value)
        elif field.message_type is not None:
            getattr(message, name).CopyFrom(value)
        else:
            setattr(message, name, value)
    return message
