"""Runs a projection: consume its topics, apply each event, commit, quarantine poison events.

A projection names its topics, or the runner is given a ``topic_pattern`` (a regular expression
matched from the start of the name, as Kafka clients do): then it reads every matching topic,
including topics created later (found within ``metadata_max_age_ms``), e.g. every event topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from pymongo.asynchronous.database import AsyncDatabase

from clinical_platform.clients.kafka import (
    KafkaConnection,
    build_admin,
    build_consumer,
    build_producer,
)
from clinical_platform.eventlog.topics import TopicSpec, ensure_topic, ensure_topics
from clinical_platform.observability.consumer_lag import LagWatcher, watch_lag
from clinical_platform.observability.messaging import processing_batch
from clinical_platform.projections.applied import applied_versions
from clinical_platform.projections.applier import (
    AnyProjection,
    EventApplier,
    dead_letter_topic,
    quarantine,
)
from clinical_platform.projections.projection import MessageProjection
from clinical_platform.security.envelope_cipher import EnvelopeCipher

__all__ = ["AnyProjection", "EventApplier", "ProjectionRunner", "dead_letter_topic", "quarantine"]

logger = logging.getLogger(__name__)

# How long one poll waits for records when there are none: a long fetch, woken by the first
# record (no sleeping between polls), and each poll's records are written as one batch.
POLL_TIMEOUT_MS = 1000
MAX_BATCH = 1000
# How soon a pattern subscription sees a topic created after the runner started.
PATTERN_METADATA_MAX_AGE_MS = 30_000


def group_id(projection: AnyProjection) -> str:
    return f"projection.{projection.name}"


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
        # Readers of the collections it writes await its announcements (Envelope projections:
        # their documents are versioned by aggregate).
        self._announce_to = (
            []
            if isinstance(projection, MessageProjection)
            else [applied_versions(f"{database.name}.{name}") for name in projection.collections]
        )
        self._assignment: frozenset[TopicPartition] = frozenset()

    def _note_assignment(self, consumer: AIOKafkaConsumer) -> None:
        """Tell the readers which partitions this runner consumes (they wait on those alone)."""
        assignment = frozenset(consumer.assignment())
        if assignment == self._assignment:
            return
        self._assignment = assignment
        for topic in {partition.topic for partition in assignment} | set(self._projection.topics):
            count = len(consumer.partitions_for_topic(topic) or ())
            mine = [p.partition for p in assignment if p.topic == topic]
            for announced in self._announce_to:
                announced.assigned(self, topic, mine, count)

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
        committing: asyncio.Task[None] | None = None
        lag: LagWatcher | None = None
        try:
            # Inside the try: a runner restarted after Kafka was away must not leak clients.
            await consumer.start()
            await dead_letters.start()
            lag = watch_lag(consumer, group_id(self._projection))
            self.applier = EventApplier(
                self._projection, self._db, dead_letters, cipher=self._cipher
            )
            while True:
                batch = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_BATCH)
                self._note_assignment(consumer)
                if not batch:
                    continue
                records = [record for records in batch.values() for record in records]
                with processing_batch(records, group_id(self._projection)):
                    applied = await self.applier.apply_batch(records)
                lag.applied(records)
                # Written, so readers may go; the commit after only makes it durable.
                for announced in self._announce_to:
                    announced.publish(applied)
                # The commit's round trip overlaps the next fetch and write: it names this
                # batch's offsets (written), and one commit at a time keeps them in order.
                if committing is not None:
                    await committing
                written = {partition: rs[-1].offset + 1 for partition, rs in batch.items()}
                committing = asyncio.create_task(consumer.commit(written))
        finally:
            if lag is not None:
                await lag.stop()
            for announced in self._announce_to:
                announced.withdraw(self)
            if committing is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await committing
            for client in (consumer, dead_letters):
                with contextlib.suppress(Exception):
                    await client.stop()


def dead_letter_producer(kafka: KafkaConnection) -> AIOKafkaProducer:
    return build_producer(kafka)


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
