"""JSON Schemas of protobuf messages as the gateway exchanges them: protobuf's JSON mapping with
the proto field names, one component per message (``#/components/schemas/<full name>``), the
schema of a field given as a query parameter (scalars and enums only), and error answers whose
body is such a component."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

JSON = "application/json"
SCHEMA_REF = "#/components/schemas/"
_INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32 = {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
_INT64 = {"anyOf": [{"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
                    {"type": "string", "pattern": "^-?[0-9]{1,19}$"}]}  # fmt: skip
_UINT64 = {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 2**64 - 1},
                     {"type": "string", "pattern": "^[0-9]{1,20}$"}]}  # fmt: skip
_FLOAT = {"anyOf": [{"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}]}
_T = FieldDescriptor
_SCALARS: Mapping[int, Mapping[str, Any]] = {
    _T.TYPE_DOUBLE: _FLOAT, _T.TYPE_FLOAT: _FLOAT,
    _T.TYPE_INT32: _INT32, _T.TYPE_SINT32: _INT32, _T.TYPE_SFIXED32: _INT32,
    _T.TYPE_UINT32: _UINT32, _T.TYPE_FIXED32: _UINT32,
    _T.TYPE_INT64: _INT64, _T.TYPE_SINT64: _INT64, _T.TYPE_SFIXED64: _INT64,
    _T.TYPE_UINT64: _UINT64, _T.TYPE_FIXED64: _UINT64,
    _T.TYPE_BOOL: {"type": "boolean"}, _T.TYPE_STRING: {"type": "string"},
    _T.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}  # fmt: skip
_WELL_KNOWN: Mapping[str, Mapping[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
}
# A query value is text: in a query, a 64-bit integer is its digits.
_QUERY_INT64 = {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}


def query_schema(field: FieldDescriptor) -> dict[str, Any] | None:
    """A query parameter's schema: scalar and enum fields only (a query has no messages)."""
    if field.type == _T.TYPE_MESSAGE or _is_repeated(field):
        return None
    if field.type == _T.TYPE_ENUM:
        return _enum_schema(field)
    if field.type in {_T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64}:
        return dict(_QUERY_INT64)
    if field.type in {_T.TYPE_UINT64, _T.TYPE_FIXED64}:
        return {"type": "integer", "minimum": 0, "maximum": 2**64 - 1}
    if field.type in {_T.TYPE_DOUBLE, _T.TYPE_FLOAT}:
        return {"type": "number"}
    return dict(_SCALARS[field.type])


def schema_name(message: Descriptor, schemas: dict[str, Any]) -> str:
    """The component named after ``message`` (added with the messages it holds)."""
    name = message.full_name
    if name not in schemas:
        schemas[name] = {}  # taken before recursing: messages may hold themselves
        schemas[name] = message_schema(message, schemas)
    return name


def message_schema(message: Descriptor, schemas: dict[str, Any],
                   omit: Iterable[str] = ()) -> dict[str, Any]:  # fmt: skip
    if message.full_name in _WELL_KNOWN:
        return dict(_WELL_KNOWN[message.full_name])
    left_out = set(omit)
    properties = {
        field.name: field_schema(field, schemas)
        for field in message.fields
        if field.name not in left_out
    }
    return {"type": "object", "properties": properties, "additionalProperties": False}


def field_schema(field: FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value = field.message_type.fields_by_name["value"]
        return {"type": "object", "additionalProperties": _single_schema(value, schemas)}
    single = _single_schema(field, schemas)
    return {"type": "array", "items": single} if _is_repeated(field) else single


def _single_schema(field: FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    message = field.message_type
    if message is not None:
        if message.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[message.full_name])
        return {"$ref": SCHEMA_REF + schema_name(message, schemas)}
    if field.type == _T.TYPE_ENUM:
        return _enum_schema(field)
    return dict(_SCALARS[field.type])


def _enum_schema(field: FieldDescriptor) -> dict[str, Any]:
    values = field.enum_type.values if field.enum_type is not None else ()
    return {"type": "string", "enum": [v.name for v in values]}


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def error_responses(statuses: Mapping[str, str], schema: str, media_type: str) -> dict[str, Any]:
    """The answers of ``statuses`` (status: description), each a ``schema`` component."""
    content = {media_type: {"schema": {"$ref": SCHEMA_REF + schema}}}
    return {status: {"description": text, "content": content} for status, text in statuses.items()}
