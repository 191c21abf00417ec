"""Verifying one partition of an event topic against its signed checkpoints.

1. Each checkpoint: its topic and partition (the ones verified: a genuine checkpoint of another
   partition proves nothing here), its signature (Vault Transit verify), its root against its
   entries, its range and its ``previous_root`` against the previous valid checkpoint. Entries
   of valid checkpoints form the attested map, offset -> event hash.
2. Each record, in offset order: its hash recomputed from its bytes against the hash it carries
   and the attested one, its place in its aggregate's chain (version + 1, prev_hash), and
   whether a record inside the attested range is attested at all. The checkpoint runner attests
   only its writer's records, so one inside the range but unattested is a foreign record: it is
   named, and kept out of the chains, so the genuine event after it is not blamed.
3. Every attested offset no record was found at: a dropped record.

Findings are sorted by offset; the first names the first bad offset.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from google.protobuf.message import DecodeError

from clinical.audit.v1.checkpoint_pb2 import Checkpoint
from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.security.chain import (
    ChainTracker,
    Finding,
    VerificationReport,
    record_hash,
)
from clinical_platform.security.checkpoints import root_of, signed_statement
from clinical_platform.security.ports import Signer


class LogRecord(Protocol):
    """A record as read from Kafka (aiokafka's ConsumerRecord fits)."""

    @property
    def offset(self) -> int: ...

    @property
    def value(self) -> bytes | None: ...


def attested_hash(value: bytes | None) -> bytes:
    """The hash a checkpoint attests for a record value; any bytes at all have one."""
    if value is None:
        return hashlib.sha256(b"").digest()
    try:
        return record_hash(value)
    except ValueError:
        return hashlib.sha256(value).digest()


async def verify_partition(
    records: Sequence[LogRecord],
    checkpoints: Sequence[Checkpoint],
    signer: Signer,
    *,
    topic: str,
    partition: int,
) -> VerificationReport:
    """Verify a whole partition (records from its first offset) against its checkpoints.

    ``records`` are those of ``topic``/``partition``; ``checkpoints`` are the ones published
    under its key, in order. Raises `KeyServiceUnavailableError` when Vault cannot verify
    signatures.
    """
    ranked: list[tuple[int, int, str]] = []  # (offset, rank, reason): checkpoint findings first
    attested: dict[int, tuple[bytes, str]] = {}
    attested_through: int | None = None
    attested_at: datetime | None = None
    previous_root = b""
    for checkpoint in checkpoints:
        where = f"checkpoint [{checkpoint.first_offset}..{checkpoint.last_offset}]"
        problems = await checkpoint_problems(
            checkpoint, signer, topic=topic, partition=partition, attested_through=attested_through
        )
        if problems:
            ranked += [(checkpoint.first_offset, 0, f"{where}: {p}") for p in problems]
            continue
        if checkpoint.previous_root != previous_root:
            reason = "previous_root does not match the previous valid checkpoint's root"
            ranked.append((checkpoint.first_offset, 0, f"{where}: {reason} (one is missing)"))
        previous_root = checkpoint.root
        attested_through = checkpoint.last_offset
        attested_at = checkpoint.created_at.ToDatetime(tzinfo=UTC)
        for entry in checkpoint.entries:
            attested[entry.offset] = (entry.event_hash, where)

    tracker = ChainTracker()
    seen: set[int] = set()
    unattested = 0
    last_offset = -1
    for record in records:
        offset = record.offset
        if offset <= last_offset:
            ranked.append((offset, 1, f"offset {offset} comes after offset {last_offset}"))
        last_offset = max(last_offset, offset)
        computed = attested_hash(record.value)
        seen.add(offset)
        if offset in attested:
            expected, where = attested[offset]
            if computed != expected:
                reason = f"differs from the record {where} attests: changed, reordered or inserted"
                ranked.append((offset, 1, reason))
        elif attested_through is not None and offset <= attested_through:
            reason = "inside the attested range but in no valid checkpoint: not its writer's"
            ranked.append((offset, 1, reason))
            continue  # a foreign record is no link of any chain
        else:
            unattested += 1
        try:
            envelope = Envelope.FromString(record.value or b"")
            # Raises ValueError for bytes that are not a protobuf message at all.
            reasons = tracker.check(envelope, record_hash(record.value or b""))
        except (DecodeError, ValueError):
            reasons = ["the record is not a decodable Envelope"]
        ranked += [(offset, 2, reason) for reason in reasons]

    for offset in sorted(set(attested) - seen):
        ranked.append((offset, 1, f"missing: {attested[offset][1]} attests a record here"))
    ranked.sort(key=lambda item: (item[0], item[1]))
    return VerificationReport(
        findings=tuple(Finding(offset, reason) for offset, _rank, reason in ranked),
        attested_through=attested_through,
        attested_at=attested_at,
        records=len(records),
        unattested=unattested,
    )


async def checkpoint_problems(
    checkpoint: Checkpoint,
    signer: Signer,
    *,
    topic: str,
    partition: int,
    attested_through: int | None = None,
) -> list[str]:
    """Why ``checkpoint`` cannot attest records of ``topic``/``partition`` (empty: it can).

    ``attested_through``: the last offset of the previous valid checkpoint, if any.
    """
    problems = []
    if (checkpoint.topic, checkpoint.partition) != (topic, partition):
        problems.append(f"it attests {checkpoint.topic}/{checkpoint.partition}, not this partition")
    if checkpoint.signing_key != signer.key_name:
        problems.append("signed by an unexpected key")
    valid = await asyncio.to_thread(
        signer.verify, signed_statement(checkpoint), checkpoint.signature, checkpoint.key_version
    )
    if not valid:
        problems.append("signature invalid: a forged or altered checkpoint")
    entries = checkpoint.entries
    offsets = [entry.offset for entry in entries]
    well_formed = (
        bool(entries)
        and offsets == sorted(set(offsets))
        and checkpoint.first_offset == offsets[0]
        and checkpoint.last_offset == offsets[-1]
        and checkpoint.record_count == len(entries)
    )
    if not well_formed:
        problems.append("its entries do not match its range and count")
    elif root_of(entries) != checkpoint.root:
        problems.append("its root does not match its entries")
    if attested_through is not None and checkpoint.first_offset <= attested_through:
        problems.append("it overlaps an earlier checkpoint")
    return problems
