"""Reading checkpoints and event partitions back from Kafka, for the runner and for verifiers.

Anyone who can produce to the checkpoints topic can put any bytes under a partition's key, so
the runner resumes only after the newest checkpoint that is well formed, of its own partition
and signed by the audit key; anything else is skipped with a warning (one garbage record must
not keep a service from starting). Verifiers get every decodable checkpoint and judge each.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from google.protobuf.message import DecodeError

from clinical.audit.v1.checkpoint_pb2 import Checkpoint
from clinical_platform.clients.kafka import KafkaConnection, build_admin, build_consumer
from clinical_platform.eventlog.partitioning import partition_for
from clinical_platform.eventlog.topics import partition_count
from clinical_platform.security.checkpoints import checkpoint_key
from clinical_platform.security.ports import Signer
from clinical_platform.security.verification import checkpoint_problems

logger = logging.getLogger(__name__)
_SCAN_WINDOW = 256

# (offsets read so far, offsets to read): an operator's progress display.
ReadProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class StoredRecord:
    offset: int
    value: bytes | None


async def find_last_checkpoint(
    kafka: KafkaConnection, checkpoints_topic: str, topic: str, partition: int, signer: Signer
) -> Checkpoint | None:
    """The partition's latest valid checkpoint, scanning the topic backwards in windows.

    Raises `KeyServiceUnavailableError` when Vault cannot check signatures.
    """
    key = checkpoint_key(topic, partition)
    source = await _checkpoint_partition(kafka, checkpoints_topic, key)
    async with _reader(kafka, source) as consumer:
        start = (await consumer.beginning_offsets([source]))[source]
        upper = (await consumer.end_offsets([source]))[source]
        window = _SCAN_WINDOW
        while upper > start:
            lower = max(start, upper - window)
            found = [r for r in await _read_range(consumer, source, lower, upper) if r.key == key]
            for record in reversed(found):
                checkpoint = await _valid_checkpoint(record, signer, topic, partition)
                if checkpoint is not None:
                    return checkpoint
            upper, window = lower, window * 2
    return None


async def read_checkpoints(
    kafka: KafkaConnection, checkpoints_topic: str, topic: str, partition: int
) -> list[Checkpoint]:
    """Every decodable checkpoint under the partition's key, in the order they were published
    (undecodable records are skipped with a warning: they are no checkpoint at all)."""
    key = checkpoint_key(topic, partition)
    source = await _checkpoint_partition(kafka, checkpoints_topic, key)
    async with _reader(kafka, source) as consumer:
        start = (await consumer.beginning_offsets([source]))[source]
        end = (await consumer.end_offsets([source]))[source]
        records = await _read_range(consumer, source, start, end)
    decoded = [(record, _decoded(record)) for record in records if record.key == key]
    return [checkpoint for _record, checkpoint in decoded if checkpoint is not None]


async def read_partition(
    kafka: KafkaConnection, topic: str, partition: int, *, on_progress: ReadProgress | None = None
) -> list[StoredRecord]:
    """Every committed record of an event partition, from its first offset; ``on_progress`` is
    told the offsets read of those to read after every fetch (an operator's progress bar)."""
    source = TopicPartition(topic, partition)
    async with _reader(kafka, source) as consumer:
        start = (await consumer.beginning_offsets([source]))[source]
        end = (await consumer.end_offsets([source]))[source]
        records = await _read_range(consumer, source, start, end, on_progress)
    return [StoredRecord(record.offset, record.value) for record in records]


async def _valid_checkpoint(
    record: Any, signer: Signer, topic: str, partition: int
) -> Checkpoint | None:
    checkpoint = _decoded(record)
    if checkpoint is None:
        return None
    problems = await checkpoint_problems(checkpoint, signer, topic=topic, partition=partition)
    if problems:
        logger.warning(
            "invalid checkpoint record skipped",
            extra={"topic": topic, "partition": partition, "offset": record.offset,
                   "problems": problems},
        )  # fmt: skip
        return None
    return checkpoint


def _decoded(record: Any) -> Checkpoint | None:
    try:
        return Checkpoint.FromString(record.value or b"")
    except DecodeError:
        logger.warning(
            "undecodable checkpoint record skipped",
            extra={"topic": record.topic, "offset": record.offset},
        )
        return None


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
    consumer: AIOKafkaConsumer, source: TopicPartition, lower: int, upper: int,
    on_progress: ReadProgress | None = None,
) -> list[Any]:  # fmt: skip
    consumer.seek(source, lower)
    records: list[Any] = []
    while (position := await consumer.position(source)) < upper:
        if on_progress is not None:
            on_progress(position - lower, upper - lower)
        fetched = await consumer.getmany(source, timeout_ms=1000, max_records=500)
        records += [r for r in fetched.get(source, []) if r.offset < upper]
    if on_progress is not None:
        on_progress(upper - lower, upper - lower)
    return records
