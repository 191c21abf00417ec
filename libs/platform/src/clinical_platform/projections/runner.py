"""Runs a projection: consume its topics, apply each event, commit, quarantine poison events.

A projection names its topics, or the runner is given a ``topic_pattern`` (a regular expression
matched from the start of the name, as Kafka clients do): then it reads every matching topic,
including topics created later (found within ``metadata_max_age_ms``), e.g. every event topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord
from google.protobuf.message import DecodeError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure

from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.clients.kafka import (
    KafkaConnection,
    build_admin,
    build_consumer,
    build_producer,
)
from clinical_platform.eventlog.topics import TopicSpec, ensure_topic, ensure_topics
from clinical_platform.projections.projection import (
    ForgettingProjection,
    MessageProjection,
    Projection,
)
from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.security.errors import KeyServiceUnavailableError, PatientForgottenError
from clinical_platform.security.forgetting import forget_patient_documents

logger = logging.getLogger(__name__)

# MongoDB being away is not the event's fault: retry these, never dead-letter for them.
# Nor is Vault being away: the payload is fine, its key is just out of reach for now.
TRANSIENT = (ConnectionFailure, KeyServiceUnavailableError)
# How soon a pattern subscription sees a topic created after the runner started.
PATTERN_METADATA_MAX_AGE_MS = 30_000

AnyProjection = Projection | MessageProjection[Any]
"""What the runner and rebuilds take: an Envelope projection, or one that decodes its records."""


def dead_letter_topic(topic: str) -> str:
    """Where a topic's poison events go: ``<topic>.dlq``."""
    return f"{topic}.dlq"


def group_id(projection: AnyProjection) -> str:
    return f"projection.{projection.name}"


def decoder_of(projection: AnyProjection) -> Callable[[bytes], Any]:
    """How a record's value becomes what the projection applies (an Envelope by default)."""
    if isinstance(projection, MessageProjection):
        return projection.decode
    return Envelope.FromString


class EventApplier:
    """Applies one record to a projection: retries while MongoDB or Vault is away, quarantines
    poison, decrypts payloads first when given a cipher (and writes the "forgotten" marker for
    a forgotten patient's event)."""

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

    async def apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        while True:
            try:
                await self._apply(self._decode(record.value))
            except TRANSIENT as transient:
                error = type(transient).__name__
                logger.warning(
                    "read model or key service unreachable; retrying",
                    extra={**_origin(record), "error": error},
                )
                await asyncio.sleep(self._retry_delay_s)
                continue
            except (DecodeError, Exception) as poison:
                await quarantine(record, poison, self._dead_letters)
                self.dead_lettered += 1
                return
            self.applied += 1
            return

    async def _apply(self, decoded: Any) -> None:
        if self._cipher is None or not isinstance(decoded, Envelope):
            await self._projection.apply(decoded, self._db)
            return
        try:
            plain = await self._cipher.decrypted(decoded)
        except PatientForgottenError:
            await self._apply_forgotten(decoded)
            return
        await self._projection.apply(plain, self._db)

    async def _apply_forgotten(self, envelope: Envelope) -> None:
        if isinstance(self._projection, ForgettingProjection):
            await self._projection.apply_forgotten(envelope, self._db)
            return
        for collection in self._projection.collections:
            await forget_patient_documents(self._db[collection], envelope.patient_id)


class ProjectionRunner:
    """Applies a projection's events in log order per partition, at least once, idempotently.

    Offsets are committed after each applied batch (manual commits), so the consumer group's
    committed offsets are the projection's durable checkpoint. A poison event (undecodable, or
    rejected by ``apply``) is written to the dead-letter topic with its origin in the headers,
    and the projection keeps going.
    """

    def __init__(
        self,
        projection: AnyProjection,
        *,
        kafka: KafkaConnection,
        database: AsyncDatabase[Any],
        replication_factor: int = 1,
        topic_pattern: str | None = None,
        cipher: EnvelopeCipher | None = None,
        topic_specs: Sequence[TopicSpec] = (),
    ) -> None:
        self._projection = projection
        # Topics it reads that another service writes: created here if that one has not yet.
        self._topic_specs = topic_specs
        self._cipher = cipher
        self._kafka = kafka
        self._db = database
        self._replication_factor = replication_factor
        self._topic_pattern = topic_pattern
        self.applier: EventApplier | None = None

    async def run(self) -> None:
        """Consume until cancelled."""
        await ensure_topics(self._kafka, self._topic_specs)
        await ensure_dead_letter_topics(
            self._projection, self._kafka, replication_factor=self._replication_factor
        )
        await self._projection.setup(self._db)
        pattern = self._topic_pattern
        consumer = build_consumer(
            self._kafka,
            *(() if pattern else self._projection.topics),
            group_id=group_id(self._projection),
            **({"metadata_max_age_ms": PATTERN_METADATA_MAX_AGE_MS} if pattern else {}),
        )
        if pattern:
            listener = _DeadLetterTopicsOnAssignment(self._kafka, self._replication_factor)
            consumer.subscribe(pattern=pattern, listener=listener)
        dead_letters = dead_letter_producer(self._kafka)
        try:
            # Inside the try: a runner restarted after Kafka was away must not leak clients.
            await consumer.start()
            await dead_letters.start()
            self.applier = EventApplier(
                self._projection, self._db, dead_letters, cipher=self._cipher
            )
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=500)
                for records in batch.values():
                    for record in records:
                        await self.applier.apply(record)
                if batch:
                    await consumer.commit()
        finally:
            for client in (consumer, dead_letters):
                with contextlib.suppress(Exception):
                    await client.stop()


def dead_letter_producer(kafka: KafkaConnection) -> AIOKafkaProducer:
    return build_producer(kafka)


async def quarantine(
    record: ConsumerRecord[bytes, bytes], error: BaseException, dead_letters: AIOKafkaProducer
) -> None:
    """Copy a poison record to the dead-letter topic, keeping its key, value and origin."""
    origin = _origin(record)
    logger.error("poison event sent to the dead-letter topic",
                 extra={**origin, "error": type(error).__name__})  # fmt: skip
    headers = [*(record.headers or ()), ("dlq_error", type(error).__name__.encode())]
    headers += [(f"dlq_{name}", str(value).encode()) for name, value in origin.items()]
    await dead_letters.send_and_wait(
        dead_letter_topic(record.topic), record.value, key=record.key, headers=headers
    )


async def ensure_dead_letter_topics(
    projection: AnyProjection, kafka: KafkaConnection, *, replication_factor: int
) -> None:
    """Create the dead-letter topics of the projection's topics."""
    await create_dead_letter_topics(projection.topics, kafka, replication_factor=replication_factor)


async def create_dead_letter_topics(
    topics: Iterable[str], kafka: KafkaConnection, *, replication_factor: int
) -> None:
    """Create each topic's dead-letter topic (kept forever: it holds clinical events to repair)."""
    admin = build_admin(kafka)
    await admin.start()
    try:
        for topic in topics:
            configs = {"retention.ms": "-1", "cleanup.policy": "delete"}
            spec = TopicSpec(dead_letter_topic(topic), 1, replication_factor, configs)
            await ensure_topic(admin, spec)
    finally:
        await admin.close()


class _DeadLetterTopicsOnAssignment(ConsumerRebalanceListener):  # type: ignore[misc]
    """With a pattern, topics are known only once assigned: give each its dead-letter topic
    before its first record is applied."""

    def __init__(self, kafka: KafkaConnection, replication_factor: int) -> None:
        self._kafka = kafka
        self._replication_factor = replication_factor
        self._ensured: set[str] = set()

    async def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        new = {partition.topic for partition in assigned} - self._ensured
        if new:
            await create_dead_letter_topics(
                sorted(new), self._kafka, replication_factor=self._replication_factor
            )
            self._ensured |= new


def _origin(record: ConsumerRecord[Any, Any]) -> dict[str, object]:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}
