"""What the event log needs from outside itself, as ports: it never imports their adapters.

`clinical_platform.security` implements them: `EnvelopeCipher` is a `PayloadCipher`, and
`security.wiring.checkpoint_runners` is an `AttesterFactory`. Composition roots inject them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from clinical.events.v1.envelope_pb2 import Envelope


class PayloadCipher(Protocol):
    """Encrypts events and snapshots before they are stored, decrypts them when loaded."""

    async def encrypt_all(self, envelopes: Iterable[Envelope]) -> None:
        """Encrypt each payload in place; raise before any is appended when one cannot be."""
        ...

    async def decrypt(self, envelope: Envelope) -> bytes:
        """The serialized payload message, in plaintext."""
        ...

    async def encrypt_snapshot(
        self, patient_id: str, aggregate_id: str, version: int, state: bytes
    ) -> bytes: ...

    async def decrypt_snapshot(self, aggregate_id: str, version: int, stored: bytes) -> bytes: ...


class PartitionAttester(Protocol):
    """Runs beside an owned partition's writer, e.g. signing checkpoints of what it wrote."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class WriterRecords(Protocol):
    """What an owned partition's writer knows of the records on its partition, for its attester:
    anyone able to produce to the topic can append there, only the writer knows its own."""

    def next_offset(self) -> int:
        """Every offset below this one the writer has written or read back from the topic."""
        ...

    def wrote(self, offset: int) -> bool:
        """Whether the writer (this one or an earlier one with the same local store) wrote the
        record at ``offset``; meaningful below `next_offset`."""
        ...


AttesterFactory = Callable[[str, int, WriterRecords], PartitionAttester]
"""Builds the attester of (topic, partition), told what the partition's writer wrote."""
