"""Rebuild a read model from scratch: drop its collections, replay its topics from offset 0.

Run it while the projection's runner is stopped (scale the service's projector down, or run the
rebuild as a job before it starts): a live runner would interleave newer events with the replay.
At the end the rebuild commits the offsets it reached to the projection's consumer group, so the
runner resumes right after the replay.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from pymongo.asynchronous.database import AsyncDatabase
from tqdm import tqdm

from clinical_platform.clients.kafka import (
    KafkaConnection,
    build_admin,
    build_consumer,
)
from clinical_platform.eventlog.topics import partition_count
from clinical_platform.projections.runner import (
    AnyProjection,
    EventApplier,
    create_dead_letter_topics,
    dead_letter_producer,
    group_id,
)
from clinical_platform.security.envelope_cipher import EnvelopeCipher

logger = logging.getLogger(__name__)


# (projection name, offsets replayed so far, offsets to replay): an operator's progress display.
RebuildProgress = Callable[[str, int, int], None]


class RebuildError(Exception):
    """The rebuild could not hand over to the projection's consumer group."""


async def rebuild_projection(
    projection: AnyProjection,
    *,
    kafka: KafkaConnection,
    database: AsyncDatabase[Any],
    progress: bool = True,
    topic_pattern: str | None = None,
    cipher: EnvelopeCipher | None = None,
    on_progress: RebuildProgress | None = None,
) -> int:
    """Replay every event of the projection's topics into fresh collections; return the count.

    With ``topic_pattern`` (as its runner was given), the topics that match it now are replayed.
    ``progress`` draws a tqdm bar on stderr; ``on_progress`` is told after every batch instead.
    """
    topics = await _topics(projection, kafka, topic_pattern)
    for collection in projection.collections:
        await database.drop_collection(collection)
    applying = projection_applier(projection, topics, kafka=kafka, database=database,
                                  cipher=cipher, group=group_id(projection))  # fmt: skip
    async with applying as (consumer, applier):
        partitions = await _partitions(topics, kafka)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        total, done = sum(ends.values()), 0
        if on_progress is not None:
            on_progress(projection.name, done, total)
        with tqdm(total=total, desc=f"rebuild {projection.name}", unit="offset",
                  disable=not progress) as bar:  # fmt: skip
            for partition in partitions:
                while (position := await consumer.position(partition)) < ends[partition]:
                    fetched = await consumer.getmany(partition, timeout_ms=1000, max_records=1000)
                    await applier.apply_batch(fetched.get(partition, []))
                    advanced = await consumer.position(partition) - position
                    bar.update(advanced)
                    done += advanced
                    if on_progress is not None:
                        on_progress(projection.name, done, total)
        try:
            await consumer.commit({p: ends[p] for p in partitions})
        except (CommitFailedError, KafkaError) as error:
            msg = f"stop the {projection.name} projector before rebuilding ({type(error).__name__})"
            raise RebuildError(msg) from error
    return applier.applied + applier.dead_lettered


async def _topics(
    projection: AnyProjection, kafka: KafkaConnection, topic_pattern: str | None
) -> list[str]:
    if topic_pattern is None:
        return list(projection.topics)
    admin = build_admin(kafka)
    await admin.start()
    try:
        # match(), not fullmatch(): the semantics of Kafka clients' pattern subscriptions.
        return sorted(t for t in await admin.list_topics() if re.match(topic_pattern, t))
    finally:
        await admin.close()


async def _partitions(topics: list[str], kafka: KafkaConnection) -> list[TopicPartition]:
    admin = build_admin(kafka)
    await admin.start()
    try:
        return [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in range(await partition_count(admin, topic))
        ]
    finally:
        await admin.close()


@asynccontextmanager
async def projection_applier(
    projection: AnyProjection, topics: Sequence[str], *, kafka: KafkaConnection,
    database: AsyncDatabase[Any], cipher: EnvelopeCipher | None, group: str,
) -> AsyncIterator[tuple[AIOKafkaConsumer, EventApplier]]:  # fmt: skip
    """The projection's dead-letter topics and collections set up, a consumer in ``group`` (its
    partitions assigned by the caller) and an applier that sets aside what it cannot apply:
    what a rebuild and a replay of dead letters drive by hand; both stopped at the end."""
    await create_dead_letter_topics(topics, kafka, replication_factor=1)
    await projection.setup(database)
    consumer = build_consumer(kafka, group_id=group)
    dead_letters = dead_letter_producer(kafka)
    await consumer.start()
    await dead_letters.start()
    try:
        yield consumer, EventApplier(projection, database, dead_letters, cipher=cipher)
    finally:
        await consumer.stop()
        await dead_letters.stop()
