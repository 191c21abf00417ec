"""Checkpoints on Kafka: the runner that attests a partition (readers: `checkpoint_reads`).

`PartitionCheckpointRunner` tails one event partition (``read_committed``, exactly what every
consumer and verifier sees) and publishes its checkpoints through a transactional producer
whose id is per partition, so a newer runner for the partition fences an older one just as the
event writers are fenced. On start it resumes after the partition's last valid checkpoint.

It attests only the records the partition's own writer wrote (`WriterRecords`, the writer's
local store): anyone able to produce to the topic can append a well-formed, correctly chained
envelope, and a checkpoint vouching for it would make the log vouch for a forgery. A record the
writer did not write is passed over, so verification names its offset. A record the writer has
not yet seen (its commit is still being recorded) is held until the writer has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
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
from clinical_platform.eventlog.ports import WriterRecords
from clinical_platform.eventlog.topics import TopicSpec, ensure_topic
from clinical_platform.security.checkpoint_reads import (
    StoredRecord,
    find_last_checkpoint,
    read_checkpoints,
    read_partition,
)
from clinical_platform.security.checkpoints import (
    CHECKPOINTS_TOPIC,
    Checkpointer,
    CheckpointPolicy,
    checkpoint_key,
)
from clinical_platform.security.ports import Signer
from clinical_platform.security.verification import attested_hash

# Readers re-exported: callers import them from here.
__all__ = [
    "CheckpointRunnerConfig",
    "KafkaCheckpointPublisher",
    "PartitionCheckpointRunner",
    "StoredRecord",
    "checkpoints_topic_spec",
    "find_last_checkpoint",
    "read_checkpoints",
    "read_partition",
]

logger = logging.getLogger(__name__)


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

    def __init__(
        self, config: CheckpointRunnerConfig, signer: Signer, writer: WriterRecords
    ) -> None:
        self._config = config
        self._signer = signer
        self._writer = writer
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
            config.kafka, config.checkpoints_topic, config.topic, config.partition, self._signer
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
        poll_s = min(1.0, self._config.policy.every_seconds / 2)
        while True:
            try:
                fetched = await consumer.getmany(partition, timeout_ms=int(poll_s * 1000))
                held = await self._attest(fetched.get(partition, []), checkpointer)
                if checkpointer.due():
                    await checkpointer.flush()
                if held is not None:
                    consumer.seek(partition, held)
                    await asyncio.sleep(poll_s)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Vault or Kafka away: the entries stay pending and the next round retries,
                # reading on from the first record not yet observed.
                logger.warning("checkpoint not published; retrying",
                               extra={"topic": partition.topic, "partition": partition.partition,
                                      "error": type(error).__name__})  # fmt: skip
                consumer.seek(partition, checkpointer.next_offset)
                await asyncio.sleep(1.0)

    async def _attest(self, records: Sequence[Any], checkpointer: Checkpointer) -> int | None:
        """Observe the writer's records, pass over foreign ones; the offset of the first record
        the writer has not seen yet (to read again later), or None."""
        seen_up_to = self._writer.next_offset()
        for record in records:
            if record.offset >= seen_up_to:
                return int(record.offset)
            if self._writer.wrote(record.offset):
                await checkpointer.observe(record.offset, attested_hash(record.value))
            elif record.offset >= checkpointer.next_offset:
                checkpointer.pass_over(record.offset)
                logger.warning(
                    "record not written by the partition's writer left unattested",
                    extra={"topic": record.topic, "partition": record.partition,
                           "offset": record.offset},
                )  # fmt: skip
        return None
