"""Checkpoints on Kafka: the runner that attests a partition, and readers for verification.

`PartitionCheckpointRunner` tails one event partition (``read_committed``, exactly what every
consumer and verifier sees) and publishes its checkpoints through a transactional producer
whose id is per partition, so a newer runner for the partition fences an older one just as the
event writers are fenced. On start it resumes after the partition's last published checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from clinical.audit.v1.checkpoint_pb2 import Checkpoint
from clinical_platform.clients.kafka import (
    KafkaConnection,
    build_admin,
    build_consumer,
    build_producer,
)
from clinical_platform.eventlog.partitioning import partition_for
from clinical_platform.eventlog.topics import TopicSpec, ensure_topic, partition_count
from clinical_platform.security.checkpoints import (
    CHECKPOINTS_TOPIC,
    Checkpointer,
    CheckpointPolicy,
    checkpoint_key,
)
from clinical_platform.security.ports import Signer
from clinical_platform.security.verification import attested_hash

logger = logging.getLogger(__name__)
_SCAN_WINDOW = 256


@dataclass(frozen=True)
class StoredRecord:
    offset: int
    value: bytes | None


def checkpoints_topic_spec(
    name: str = CHECKPOINTS_TOPIC, *, replication_factor: int = 1, min_insync_replicas: int = 1
) -> TopicSpec:
    """Kept forever like the event topics; one partition holds every partition's checkpoints."""
    return TopicSpec(
        name=name,
        partitions=1,
        replication_factor=replication_factor,
        configs={
            "retention.ms": "-1",
            "retention.bytes": "-1",
            "cleanup.policy": "delete",
            "min.insync.replicas": str(min_insync_replicas),
            "unclean.leader.election.enable": "false",
        },
    )


class KafkaCheckpointPublisher:
    """Commits each checkpoint in its own transaction (`CheckpointPublisher`)."""

    def __init__(self, producer: AIOKafkaProducer, topic: str = CHECKPOINTS_TOPIC) -> None:
        self._producer = producer
        self._topic = topic

    async def publish(self, checkpoint: Checkpoint) -> None:
        async with self._producer.transaction():
            await self._producer.send(
                self._topic,
                value=checkpoint.SerializeToString(),
                key=checkpoint_key(checkpoint.topic, checkpoint.partition),
            )


@dataclass(frozen=True)
class CheckpointRunnerConfig:
    kafka: KafkaConnection
    topic: str
    partition: int
    policy: CheckpointPolicy = field(default_factory=CheckpointPolicy)
    checkpoints_topic: str = CHECKPOINTS_TOPIC
    replication_factor: int = 1
    min_insync_replicas: int = 1


class PartitionCheckpointRunner:
    """Attests one event partition: reads it as it grows and publishes signed checkpoints."""

    def __init__(self, config: CheckpointRunnerConfig, signer: Signer) -> None:
        self._config = config
        self._signer = signer
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.checkpointer: Checkpointer | None = None

    async def start(self) -> None:
        """Fence older runners, find the last checkpoint, then tail the partition after it."""
        config = self._config
        admin = build_admin(config.kafka)
        await admin.start()
        try:
            spec = checkpoints_topic_spec(
                config.checkpoints_topic,
                replication_factor=config.replication_factor,
                min_insync_replicas=config.min_insync_replicas,
            )
            await ensure_topic(admin, spec)
        finally:
            await admin.close()
        self._producer = build_producer(
            config.kafka,
            transactional_id=f"{config.topic}.p{config.partition}.checkpoints",
        )
        await self._producer.start()  # init_transactions: fences an older runner
        previous = await find_last_checkpoint(
            config.kafka, config.checkpoints_topic, config.topic, config.partition
        )
        self.checkpointer = Checkpointer(
            config.topic,
            config.partition,
            self._signer,
            KafkaCheckpointPublisher(self._producer, config.checkpoints_topic),
            config.policy,
            previous=previous,
        )
        self._consumer = build_consumer(config.kafka)
        await self._consumer.start()
        partition = TopicPartition(config.topic, config.partition)
        self._consumer.assign([partition])
        self._consumer.seek(partition, self.checkpointer.next_offset)
        self._task = asyncio.create_task(
            self._run(self._consumer, self.checkpointer, partition),
            name=f"checkpoints-{config.topic}-{config.partition}",
        )

    async def stop(self, *, flush: bool = True) -> None:
        """Stop tailing; with ``flush``, first checkpoint what is pending."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            if flush and self.checkpointer is not None:
                await self.checkpointer.flush()
        except Exception as error:
            # The next owner of the partition resumes after the last published checkpoint.
            logger.warning("pending checkpoint not published at stop",
                           extra={"topic": self._config.topic, "partition": self._config.partition,
                                  "error": type(error).__name__})  # fmt: skip
        finally:
            for client in (self._consumer, self._producer):
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.stop()

    async def _run(
        self, consumer: AIOKafkaConsumer, checkpointer: Checkpointer, partition: TopicPartition
    ) -> None:
        poll_ms = int(min(1.0, self._config.policy.every_seconds / 2) * 1000)
        while True:
            try:
                fetched = await consumer.getmany(partition, timeout_ms=poll_ms)
                for record in fetched.get(partition, []):
                    await checkpointer.observe(record.offset, attested_hash(record.value))
                if checkpointer.due():
                    await checkpointer.flush()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Vault or Kafka away: the entries stay pending and the next round retries.
                logger.warning("checkpoint not published; retrying",
                               extra={"topic": partition.topic, "partition": partition.partition,
                                      "error": type(error).__name__})  # fmt: skip
                await asyncio.sleep(1.0)


async def find_last_checkpoint(
    kafka: KafkaConnection, checkpoints_topic: str, topic: str, partition: int
) -> Checkpoint | None:
    """The partition's latest committed checkpoint, scanning the topic backwards in windows."""
    key = checkpoint_key(topic, partition)
    source = await _checkpoint_partition(kafka, checkpoints_topic, key)
    async with _reader(kafka, source) as consumer:
        start = (await consumer.beginning_offsets([source]))[source]
        upper = (await consumer.end_offsets([source]))[source]
        window = _SCAN_WINDOW
        while upper > start:
            lower = max(start, upper - window)
            found = [r for r in await _read_range(consumer, source, lower, upper) if r.key == key]
            if found:
                return Checkpoint.FromString(found[-1].value)
            upper, window = lower, window * 2
    return None


async def read_checkpoints(
    kafka: KafkaConnection, checkpoints_topic: str, topic: str, partition: int
) -> list[Checkpoint]:
    """Every committed checkpoint of the partition, in the order they were published."""
    key = checkpoint_key(topic, partition)
    source = await _checkpoint_partition(kafka, checkpoints_topic, key)
    async with _reader(kafka, source) as consumer:
        start = (await consumer.beginning_offsets([source]))[source]
        end = (await consumer.end_offsets([source]))[source]
        records = await _read_range(consumer, source, start, end)
    return [Checkpoint.FromString(record.value) for record in records if record.key == key]


async def read_partition(kafka: KafkaConnection, topic: str, partition: int) -> list[StoredRecord]:
    """Every committed record of an event partition, from its first offset."""
    source = TopicPartition(topic, partition)
    async with _reader(kafka, source) as consumer:
        start = (await consumer.beginning_offsets([source]))[source]
        end = (await consumer.end_offsets([source]))[source]
        records = await _read_range(consumer, source, start, end)
    return [StoredRecord(record.offset, record.value) for record in records]


async def _checkpoint_partition(kafka: KafkaConnection, topic: str, key: bytes) -> TopicPartition:
    admin = build_admin(kafka)
    await admin.start()
    try:
        partitions = await partition_count(admin, topic)
    finally:
        await admin.close()
    # The producer's default partitioner, so readers find what the runner wrote.
    return TopicPartition(topic, partition_for(key.decode(), partitions))


@contextlib.asynccontextmanager
async def _reader(
    kafka: KafkaConnection, source: TopicPartition
) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = build_consumer(kafka)
    await consumer.start()
    try:
        consumer.assign([source])
        yield consumer
    finally:
        await consumer.stop()


async def _read_range(
    consumer: AIOKafkaConsumer, source: TopicPartition, lower: int, upper: int
) -> list[Any]:
    consumer.seek(source, lower)
    records: list[Any] = []
    while await consumer.position(source) < upper:
        fetched = await consumer.getmany(source, timeout_ms=1000, max_records=500)
        records += [r for r in fetched.get(source, []) if r.offset < upper]
    return records
