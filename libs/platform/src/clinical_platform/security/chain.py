"""Verifying the per-aggregate hash chains that the writer seals (`eventlog.hash_chain`).

Verifiers strip field 22 from the record's bytes as stored on Kafka instead of
re-serializing a parsed envelope, so fields a verifier's schema doesn't know are still covered,
byte for byte, and no protobuf library's serializer has to agree with the writer's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.eventlog.hash_chain import event_hash

HASH_FIELD_NUMBER = Envelope.DESCRIPTOR.fields_by_name["hash"].number
_MAX_VARINT_BYTES = 10


def record_canonical_bytes(value: bytes) -> bytes:
    """The canonical bytes of a record value as stored: the same bytes minus field 22.

    Raises ValueError for bytes that are not a well-formed protobuf message.
    """
    return _without_field(value, HASH_FIELD_NUMBER)


def record_hash(value: bytes) -> bytes:
    """The hash a stored record's envelope must carry."""
    return hashlib.sha256(record_canonical_bytes(value)).digest()


@dataclass(frozen=True)
class Finding:
    """One reason the log cannot be the untampered one, at an offset (or a sequence index)."""

    offset: int
    reason: str


@dataclass(frozen=True)
class VerificationReport:
    """The verdict; ``first_bad_offset`` and ``reason`` are those of the earliest finding.

    ``attested_through`` is the last offset covered by a valid checkpoint (None: none was),
    ``attested_at`` when that checkpoint was signed.
    """

    findings: tuple[Finding, ...] = ()
    attested_through: int | None = None
    records: int = 0
    unattested: int = 0
    attested_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first_bad_offset(self) -> int | None:
        return self.findings[0].offset if self.findings else None

    @property
    def reason(self) -> str | None:
        return self.findings[0].reason if self.findings else None


@dataclass
class ChainTracker:
    """Checks events one by one, in log order, against their aggregates' chains."""

    heads: dict[str, tuple[int, bytes]] = field(default_factory=dict)

    def check(self, envelope: Envelope, computed_hash: bytes) -> list[str]:
        """Reasons this event breaks its chain (empty: it fits); then it becomes the head."""
        reasons: list[str] = []
        aggregate = envelope.aggregate_id
        if not envelope.hash:
            reasons.append(f"{_event(envelope)} is not sealed (it has no hash)")
        elif computed_hash != envelope.hash:
            reasons.append(f"{_event(envelope)}: hash mismatch, the event's bytes were changed")
        version, previous = self.heads.get(aggregate, (0, b""))
        if envelope.aggregate_version <= version:
            reasons.append(
                f"{_event(envelope)} comes after version {version}: reordered or replayed event"
            )
        elif envelope.aggregate_version > version + 1:
            reasons.append(
                f"{_event(envelope)} follows version {version}: event(s) dropped before it"
            )
        elif envelope.prev_hash != previous:
            reasons.append(
                f"{_event(envelope)}: prev_hash does not match version {version}'s hash: "
                "an event was inserted or replaced"
            )
        if envelope.aggregate_version > version:
            # The claimed hash, not the computed one: one changed event is one finding, not two.
            self.heads[aggregate] = (envelope.aggregate_version, envelope.hash)
        return reasons


def verify_chain(envelopes: Sequence[Envelope]) -> VerificationReport:
    """Check sealed envelopes in log order; findings are at their index in the sequence.

    A chain alone cannot see an event dropped from the end of an aggregate, or consistent
    rewrites of hashes; signed checkpoints (`verify_partition`) can.
    """
    tracker = ChainTracker()
    findings = [
        Finding(index, reason)
        for index, envelope in enumerate(envelopes)
        for reason in tracker.check(envelope, event_hash(envelope))
    ]
    return VerificationReport(tuple(findings), records=len(envelopes))


def _event(envelope: Envelope) -> str:
    return f"{envelope.aggregate_type} {envelope.aggregate_id} version {envelope.aggregate_version}"


def _without_field(data: bytes, number: int) -> bytes:
    kept = bytearray()
    position = 0
    while position < len(data):
        start = position
        tag, position = _varint(data, position)
        wire_type = tag & 7
        if wire_type == 0:
            _, position = _varint(data, position)
        elif wire_type == 1:
            position += 8
        elif wire_type == 2:
            length, position = _varint(data, position)
            position += length
        elif wire_type == 5:
            position += 4
        else:
            raise ValueError("unsupported protobuf wire type (groups are not used here)")
        if position > len(data):
            raise ValueError("truncated protobuf message")
        if tag >> 3 != number:
            kept += data[start:position]
    return bytes(kept)


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    for index in range(position, min(position + _MAX_VARINT_BYTES, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    raise ValueError("malformed varint in protobuf message")
