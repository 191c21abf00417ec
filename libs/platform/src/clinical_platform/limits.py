"""Request limits: what one request may hold, checked before any regex, parse or I/O.

A request message is walked from its descriptor: a string longer than its cap, a repeated
field with more values than its cap, a ``google.protobuf.Timestamp`` outside the years
0001-9999 or an enum number the proto does not define is a `FieldViolation`. The walk costs one
``len`` per field and stops at a count cap before it looks at the values, so a 4 MiB request
costs what a small one does.

The first three make a request unsafe to read further: the `grpc_requests` guard refuses them
before a servicer sees the request, and the translators (`RequestLimits.check`) raise them at
once. An unknown enum number is safe to carry: the translators refuse it together with every
other problem of the request, so one INVALID_ARGUMENT still lists them all.

A service declares its caps once, in its ``entrypoints/translate.py``::

    LIMITS = declare_limits(pb.DESCRIPTOR, RequestLimits(
        chars={"family": NAME_CHARS, "email": EMAIL_CHARS, "reason": TEXT_CHARS},
        counts={"identifiers": 20},
    ))

A key is a field's name (it applies wherever the service's requests use that name) or its full
proto name (``"clinical.patient.v1.Identifier.value"``), which wins. Every other string field
is capped at `IDENTIFIER_CHARS` and every other repeated field at `DEFAULT_COUNT` values.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor
from google.protobuf.message import Message

from clinical_platform.validation import FieldViolation, Violations

NAME_CHARS = 200
"""A person's name part, an address line, a city."""
EMAIL_CHARS = 254
"""An email address (RFC 5321's path limit less the angle brackets)."""
PHONE_CHARS = 32
"""A phone number as typed, with spaces and punctuation."""
TEXT_CHARS = 4096
"""Free text: a reason, a comment, an observation's text."""
IDENTIFIER_CHARS = 128
"""Ids, codes, code systems, request ids, subjects: the cap of any field not declared."""
PAGE_TOKEN_CHARS = 1024
"""An opaque page token (base64 of a small JSON position)."""
URL_CHARS = 2048
"""A URL (what browsers and most proxies accept)."""
BYTES_CAP = 4096
"""A bytes field not declared otherwise."""
DEFAULT_COUNT = 100
"""The values a repeated field not declared otherwise may hold."""

EARLIEST_SECONDS = -62_135_596_800
"""0001-01-01T00:00:00Z in seconds since the epoch: the first instant a Timestamp may hold."""
LATEST_SECONDS = 253_402_300_799
"""9999-12-31T23:59:59Z in seconds since the epoch: the last second a Timestamp may hold."""
_NANOS_PER_SECOND = 1_000_000_000
_TIMESTAMP = "google.protobuf.Timestamp"


@dataclass(frozen=True)
class RequestLimits:
    """The caps of one service's requests: by field, with defaults for every other field."""

    chars: Mapping[str, int] = field(default_factory=dict)
    """String (and bytes) fields: the most characters (bytes) one value may have."""
    counts: Mapping[str, int] = field(default_factory=dict)
    """Repeated fields: the most values one may hold."""
    default_chars: int = IDENTIFIER_CHARS
    default_count: int = DEFAULT_COUNT

    def violations(self, message: Message) -> list[FieldViolation]:
        """Every limit ``message`` breaks, named by proto path; descriptions never quote values."""
        return [violation for _, violation in self._walk(message, "")]

    def unsafe_violations(self, message: Message) -> list[FieldViolation]:
        """The limits that make ``message`` unsafe to read further: a string, bytes or repeated
        field over its cap, a Timestamp out of range (an unknown enum number is safe to carry)."""
        return [violation for unsafe, violation in self._walk(message, "") if unsafe]

    def check(self, message: Message, violations: Violations) -> None:
        """Add what ``message`` breaks to ``violations``; raise at once if it is unsafe.

        An unsafe request (`unsafe_violations`) raises `InvalidRequest` here, with the
        violations found before it: nothing that would read its values (a regex, a parse, a
        query) runs. An unknown enum number is added to be raised with the request's other
        problems by ``violations.raise_if_any()``, unless a check of the translator's own names
        the field first. A field ``violations`` already names is not named twice.
        """
        named = {violation.field for violation in violations}
        unsafe_found = False
        for unsafe, violation in self._walk(message, ""):
            unsafe_found = unsafe_found or unsafe
            if violation.field in named:
                continue
            if unsafe:
                violations.append(violation)
            else:
                violations.add_unless_named(violation)
        if unsafe_found:
            violations.raise_if_any()

    def chars_of(self, descriptor: FieldDescriptor) -> int:
        default = BYTES_CAP if descriptor.type == FieldDescriptor.TYPE_BYTES else self.default_chars
        return self._lookup(self.chars, descriptor, default)

    def count_of(self, descriptor: FieldDescriptor) -> int:
        return self._lookup(self.counts, descriptor, self.default_count)

    @staticmethod
    def _lookup(table: Mapping[str, int], descriptor: FieldDescriptor, default: int) -> int:
        cap = table.get(descriptor.full_name)
        if cap is None:
            cap = table.get(descriptor.name, default)
        return cap

    def _walk(self, message: Message, prefix: str) -> Iterator[tuple[bool, FieldViolation]]:
        """Each violation with whether it makes the message unsafe to read further."""
        for descriptor, value in message.ListFields():
            path = f"{prefix}{descriptor.name}"
            if not descriptor.is_repeated:
                yield from self._value(descriptor, value, path)
                continue
            cap = self.count_of(descriptor)
            if len(value) > cap:
                yield True, FieldViolation(path, f"must have at most {cap} values")
                continue
            if _is_map(descriptor):
                continue  # no request has a map; its entries are capped by count alone
            for index, item in enumerate(value):
                yield from self._value(descriptor, item, f"{path}[{index}]")

    def _value(
        self, descriptor: FieldDescriptor, value: Any, path: str
    ) -> Iterator[tuple[bool, FieldViolation]]:
        kind = descriptor.type
        enum_type, message_type = descriptor.enum_type, descriptor.message_type
        if kind in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
            cap = self.chars_of(descriptor)
            if len(value) > cap:
                unit = "characters" if kind == FieldDescriptor.TYPE_STRING else "bytes"
                yield True, FieldViolation(path, f"must be at most {cap} {unit}")
        elif enum_type is not None:
            if enum_type.values_by_number.get(value) is None:
                yield False, FieldViolation(path, "is not a known value")
        elif message_type is not None:
            if message_type.full_name == _TIMESTAMP:
                if not timestamp_in_range(value.seconds, value.nanos):
                    yield True, FieldViolation(path, "must be a time in the years 0001 to 9999")
            else:
                yield from self._walk(value, f"{path}.")


def timestamp_in_range(seconds: int, nanos: int) -> bool:
    """Whether a Timestamp's fields make an instant in the years 0001-9999 (UTC)."""
    return EARLIEST_SECONDS <= seconds <= LATEST_SECONDS and 0 <= nanos < _NANOS_PER_SECOND


def _is_map(descriptor: FieldDescriptor) -> bool:
    message_type: Descriptor | None = descriptor.message_type
    return message_type is not None and message_type.GetOptions().map_entry


DEFAULT_LIMITS = RequestLimits()
"""The caps of a request whose package declared none."""
_DECLARED: dict[str, RequestLimits] = {}


def declare_limits(proto_file: FileDescriptor, limits: RequestLimits) -> RequestLimits:
    """Make ``limits`` the caps of every request of ``proto_file``'s package; return them.

    Called at import by the service's translate module, which its servicer imports: the
    guard of the gRPC server applies them before the servicer runs.
    """
    _DECLARED[proto_file.package] = limits
    return limits


def limits_of(message: Message) -> RequestLimits:
    """The caps declared for ``message``'s package, or `DEFAULT_LIMITS`."""
    return _DECLARED.get(message.DESCRIPTOR.file.package, DEFAULT_LIMITS)
