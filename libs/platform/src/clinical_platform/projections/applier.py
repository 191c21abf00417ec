"""Applies records to a projection: a poll's batch at once where the projection allows it,
retrying while MongoDB or Vault is away, quarantining poison to the dead-letter topic."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from aiokafka import AIOKafkaProducer, ConsumerRecord
from pymongo.asynchronous.database import AsyncDatabase

from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.consumers.failures import count_transient, is_transient
from clinical_platform.observability.eventlog import dead_lettered
from clinical_platform.projections.changes import (
    ChangeProjection,
    ChangeRefusedError,
    VersionedChange,
    write_changes,
)
from clinical_platform.projections.projection import (
    ForgettingProjection,
    MessageProjection,
    Projection,
)
from clinical_platform.security.envelope_cipher import EnvelopeCipher, require_sealed
from clinical_platform.security.errors import PatientForgottenError
from clinical_platform.security.forgetting import forget_patient_documents, forgotten_among

logger = logging.getLogger(__name__)

AnyProjection = Projection | MessageProjection[Any]
"""What the runner and rebuilds take: an Envelope projection, or one that decodes its records."""

Record: TypeAlias = ConsumerRecord[bytes, bytes]
Applied = tuple[str, int]
"""An (aggregate id, version) the projection now reflects."""


def dead_letter_topic(topic: str) -> str:
    """Where a topic's poison events go: ``<topic>.dlq``."""
    return f"{topic}.dlq"


def decoder_of(projection: AnyProjection) -> Callable[[bytes], Any]:
    """How a record's value becomes what the projection applies (an Envelope by default)."""
    if isinstance(projection, MessageProjection):
        return projection.decode
    return Envelope.FromString


class EventApplier:
    """Applies records to a projection: retries while MongoDB or Vault is away, quarantines
    poison, decrypts payloads first when given a cipher (and writes the "forgotten" marker for
    a forgotten patient's event). A `ChangeProjection`'s batch is written in bulk."""

    def __init__(
        self,
        projection: AnyProjection,
        database: AsyncDatabase[Any],
        dead_letters: AIOKafkaProducer,
        retry_delay_s: float = 1.0,
        cipher: EnvelopeCipher | None = None,
    ) -> None:
        self._projection = projection
        self._decode = decoder_of(projection)
        self._db = database
        self._dead_letters = dead_letters
        self._retry_delay_s = retry_delay_s
        self._cipher = cipher
        self.applied = 0
        self.dead_lettered = 0
        # Patients whose events were decrypted since the last sweep check (`_sweep_forgotten`).
        self._decrypted_for: set[str] = set()

    async def apply_batch(self, records: Sequence[Record]) -> list[Applied]:
        """Apply ``records`` in order per aggregate; return what the read model now reflects."""
        done = await self._apply_batch(records)
        await self._sweep_forgotten()
        return done

    async def _sweep_forgotten(self) -> None:
        """Mark again the documents of a patient forgotten while their events were in flight
        (`clinical_platform.security.forgetting` says why)."""
        patients, self._decrypted_for = sorted(self._decrypted_for), set()
        if not patients or isinstance(self._projection, ForgettingProjection):
            return  # a ForgettingProjection orders forgetting in its own events
        for patient_id in await forgotten_among(self._db, patients):
            for collection in self._projection.collections:
                await forget_patient_documents(self._db[collection], patient_id)

    async def _apply_batch(self, records: Sequence[Record]) -> list[Applied]:
        if not isinstance(self._projection, ChangeProjection):
            return [applied for record in records if (applied := await self.apply(record))]
        pending: list[tuple[Record, Envelope, Sequence[VersionedChange]]] = []
        done: list[Applied] = []
        for record in records:
            decoded = await self._retrying(record, self._plain, record)
            if isinstance(decoded, _Forgotten):
                # Whatever the batch holds so far lands first, then the marker over it.
                done += await self._write(pending)
                pending = []
                await self._forgetting(record, decoded.envelope)
                self.applied += 1
            elif decoded is not _POISON:
                try:
                    changes = self._projection.changes(decoded)
                except Exception as poison:
                    await self._quarantine(record, poison)
                    continue
                if changes is None:  # it needs reads: after what came before, on its own
                    done += await self._write(pending)
                    pending = []
                    if applied := await self._apply_decoded(record, decoded):
                        done.append(applied)
                    continue
                pending.append((record, decoded, changes))
        return done + await self._write(pending)

    async def apply(self, record: Record) -> Applied | None:
        """Apply one record; return its (aggregate id, version) once applied."""
        decoded = await self._retrying(record, self._plain, record)
        if decoded is _POISON:
            return None
        return await self._apply_decoded(record, decoded)

    async def _apply_decoded(self, record: Record, decoded: Any) -> Applied | None:
        if isinstance(decoded, _Forgotten):
            await self._forgetting(record, decoded.envelope)
            outcome = None
            decoded = decoded.envelope
        else:
            outcome = await self._retrying(record, self._projection.apply, decoded, self._db)
        if outcome is _POISON:
            return None
        self.applied += 1
        if isinstance(decoded, Envelope):
            return decoded.aggregate_id, decoded.aggregate_version
        return None

    async def _write(
        self, pending: list[tuple[Record, Envelope, Sequence[VersionedChange]]]
    ) -> list[Applied]:
        changes = [change for _, _, of_record in pending for change in of_record]
        owners = [index for index, (_, _, of_record) in enumerate(pending) for _ in of_record]
        while True:
            try:
                refused = await write_changes(self._db, changes)
                break
            except Exception as failure:
                if not is_transient(failure):
                    raise
                await self._pause(pending[0][0], failure)
        poisoned = {owners[position] for position in refused}
        for index in sorted(poisoned):
            await self._quarantine(pending[index][0], ChangeRefusedError())
        self.applied += len(pending) - len(poisoned)
        return [
            (envelope.aggregate_id, envelope.aggregate_version)
            for index, (_, envelope, _) in enumerate(pending)
            if index not in poisoned
        ]

    async def _plain(self, record: Record) -> Any:
        decoded = self._decode(record.value)
        if self._cipher is None or not isinstance(decoded, Envelope):
            return decoded
        if not getattr(self._projection, "reads_payload", True) or not _opens(
            self._projection, decoded
        ):
            require_sealed(decoded)  # the envelope alone is used, but never a forged one
            return decoded
        try:
            plain = await self._cipher.decrypted(decoded)
        except PatientForgottenError:
            return _Forgotten(decoded)
        if decoded.patient_id:
            self._decrypted_for.add(decoded.patient_id)
        return plain

    async def _apply_forgotten(self, envelope: Envelope) -> None:
        if isinstance(self._projection, ForgettingProjection):
            await self._projection.apply_forgotten(envelope, self._db)
            return
        for collection in self._projection.collections:
            await forget_patient_documents(self._db[collection], envelope.patient_id)

    async def _retrying(self, record: Record, step: Callable[..., Any], *args: Any) -> Any:
        """``step(*args)``, again while it fails transiently; `_POISON` once quarantined."""
        while True:
            try:
                return await step(*args)
            except Exception as failure:
                if is_transient(failure):
                    await self._pause(record, failure)
                    continue
                await self._quarantine(record, failure)
                return _POISON

    async def _forgetting(self, record: Record, envelope: Envelope) -> None:
        """Write a forgotten patient's markers, retrying whatever fails: never dead-lettered,
        since a skipped forget would keep PHI that must go."""
        while True:
            try:
                await self._apply_forgotten(envelope)
                return
            except Exception as failure:
                if not is_transient(failure):
                    where = {**_origin(record), "error": type(failure).__name__}
                    logger.error("forgetting a patient failed; retrying", extra=where)
                await self._pause(record, failure)

    async def _pause(self, record: Record, failure: Exception) -> None:
        count_transient(self._projection.name, failure)
        logger.warning(
            "read model or key service unavailable; retrying",
            extra={**_origin(record), "error": type(failure).__name__},
        )
        await asyncio.sleep(self._retry_delay_s)

    async def _quarantine(self, record: Record, poison: BaseException) -> None:
        await quarantine(record, poison, self._dead_letters)
        self.dead_lettered += 1
        dead_lettered(f"projection.{self._projection.name}", record.topic)


def _opens(projection: AnyProjection, envelope: Envelope) -> bool:
    """Whether the projection reads this event's payload: a projection that names the
    ``payload_event_types`` it reads is handed every other event with its payload sealed."""
    wanted = getattr(projection, "payload_event_types", None)
    return wanted is None or envelope.event_type in wanted


class _Forgotten:
    """An event of a forgotten patient: its payload's key is destroyed."""

    def __init__(self, envelope: Envelope) -> None:
        self.envelope = envelope


_POISON = object()


async def quarantine(record: Record, error: BaseException, dead_letters: AIOKafkaProducer) -> None:
    """Copy a poison record to the dead-letter topic, keeping its key, value and origin."""
    origin = _origin(record)
    logger.error("poison event sent to the dead-letter topic",
                 extra={**origin, "error": type(error).__name__})  # fmt: skip
    headers = [*(record.headers or ()), ("dlq_error", type(error).__name__.encode())]
    headers += [(f"dlq_{name}", str(value).encode()) for name, value in origin.items()]
    await dead_letters.send_and_wait(
        dead_letter_topic(record.topic), record.value, key=record.key, headers=headers
    )


def _origin(record: ConsumerRecord[Any, Any]) -> dict[str, object]:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}
