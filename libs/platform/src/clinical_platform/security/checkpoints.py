"""Signed checkpoints: every N events or T seconds, a partition's recent records, attested.

A checkpoint lists the offset and hash of every record in its range, their Merkle root, the
root of the partition's previous checkpoint, and an ed25519 signature from Vault Transit over
all of that (the root standing in for the entries). Whoever can rewrite Kafka can recompute
unkeyed SHA-256 chains; nobody without the Transit key can sign a checkpoint to match.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from clinical.audit.v1.checkpoint_pb2 import Checkpoint, CheckpointEntry
from clinical_platform.observability.checkpoints import watch_checkpointer
from clinical_platform.security.merkle import leaf_hash, merkle_root
from clinical_platform.security.ports import Signer
from clinical_platform.settings import BaseServiceSettings

CHECKPOINTS_TOPIC = "clinical.audit.checkpoints.v1"
_STATEMENT_PREFIX = b"clinical.audit.v1.Checkpoint\n"


def signed_statement(checkpoint: Checkpoint) -> bytes:
    """The bytes the signature covers: the checkpoint without signature, key_version, entries.

    The entries are covered through ``root``; leaving them out keeps what Vault signs small.
    """
    statement = Checkpoint()
    statement.CopyFrom(checkpoint)
    for name in ("signature", "key_version", "entries"):
        statement.ClearField(name)
    return _STATEMENT_PREFIX + statement.SerializeToString(deterministic=True)


def root_of(entries: Sequence[CheckpointEntry]) -> bytes:
    return merkle_root([leaf_hash(entry.offset, entry.event_hash) for entry in entries])


def checkpoint_key(topic: str, partition: int) -> bytes:
    """The Kafka key of a partition's checkpoints, so they stay in order in one partition."""
    return f"{topic}/{partition}".encode()


@dataclass(frozen=True)
class CheckpointPolicy:
    """Sign a checkpoint once this many records are pending, or the oldest is this old.

    One checkpoint holds at most ``max_entries`` records (more pending, after an outage, are
    signed in several): an entry takes about 40 bytes, so 4,096 keep a checkpoint near 170 KB,
    well below the broker's 1 MiB message.max.bytes, which refuses a larger one on every retry.
    """

    every_events: int = 256
    every_seconds: float = 10.0
    max_entries: int = 4096

    @classmethod
    def from_settings(cls, settings: BaseServiceSettings) -> CheckpointPolicy:
        return cls(settings.audit_checkpoint_every_events, settings.audit_checkpoint_every_seconds)


class CheckpointPublisher(Protocol):
    async def publish(self, checkpoint: Checkpoint) -> None:
        """Write the checkpoint durably (for Kafka: committed to the checkpoints topic)."""
        ...


class Checkpointer:
    """Accumulates one partition's (offset, hash) pairs and publishes signed checkpoints.

    One per partition, fed in offset order; ``previous`` (the partition's last published
    checkpoint, if any) makes it resume where that one ended and chain onto its root.
    """

    def __init__(
        self,
        topic: str,
        partition: int,
        signer: Signer,
        publisher: CheckpointPublisher,
        policy: CheckpointPolicy | None = None,
        *,
        previous: Checkpoint | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._topic = topic
        self._partition = partition
        self._signer = signer
        self._publisher = publisher
        self._policy = policy or CheckpointPolicy()
        self._clock = clock
        self._previous_root = previous.root if previous is not None else b""
        self._next_offset = previous.last_offset + 1 if previous is not None else 0
        self._pending: list[CheckpointEntry] = []
        self._pending_since: float | None = None
        watch_checkpointer(self)  # clinical_checkpoint_age_seconds (docs/observability.md)

    @property
    def next_offset(self) -> int:
        """The first offset not yet observed: where a reader of the partition resumes."""
        return self._next_offset

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def partition(self) -> int:
        return self._partition

    def unattested_for(self) -> float:
        """Seconds the oldest event not yet in a signed checkpoint has waited (0: none waits)."""
        return 0.0 if self._pending_since is None else self._clock() - self._pending_since

    def due(self) -> bool:
        """True when the pending records have waited ``every_seconds``."""
        if self._pending_since is None:
            return False
        return self._clock() - self._pending_since >= self._policy.every_seconds

    async def observe(self, offset: int, event_hash: bytes) -> Checkpoint | None:
        """Add a record; publish a checkpoint when ``every_events`` are pending.

        Offsets already observed (or covered by ``previous``) are ignored, so a reader that
        re-reads a stretch of the partition does no harm.
        """
        if offset < self._next_offset:
            return None
        if not self._pending:
            self._pending_since = self._clock()
        self._pending.append(CheckpointEntry(offset=offset, event_hash=event_hash))
        self._next_offset = offset + 1
        if len(self._pending) >= self._policy.every_events:
            return await self.flush()
        return None

    def pass_over(self, offset: int) -> None:
        """Move past a record without attesting it (one its partition's writer did not write)."""
        self._next_offset = max(self._next_offset, offset + 1)

    async def flush(self) -> Checkpoint | None:
        """Sign and publish checkpoints over everything pending, ``max_entries`` at most each;
        the last one published (None when nothing was pending).

        On failure (Vault or Kafka unavailable) the entries not yet published stay pending for
        the next flush.
        """
        published = None
        while self._pending:
            published = await self._publish(self._pending[: self._policy.max_entries])
        return published

    async def _publish(self, entries: list[CheckpointEntry]) -> Checkpoint:
        checkpoint = Checkpoint(
            topic=self._topic,
            partition=self._partition,
            first_offset=entries[0].offset,
            last_offset=entries[-1].offset,
            root=root_of(entries),
            record_count=len(entries),
            previous_root=self._previous_root,
            signing_key=self._signer.key_name,
            entries=entries,
        )
        checkpoint.created_at.FromDatetime(datetime.now(UTC))
        signature, key_version = await asyncio.to_thread(
            self._signer.sign, signed_statement(checkpoint)
        )
        checkpoint.signature = signature
        checkpoint.key_version = key_version
        await self._publisher.publish(checkpoint)
        del self._pending[: len(entries)]
        self._pending_since = self._clock() if self._pending else None
        self._previous_root = checkpoint.root
        return checkpoint
