"""The layout an event topic was created with, recorded beside it and checked at every start.

An aggregate lives in partition murmur2(id) mod the partition count, and a partition is written
by the replica whose ordinal is the partition mod the writer replica count. Partitions added to
the topic move aggregates elsewhere ("not found", or a second version 1); replicas that disagree
on the replica count both claim partitions and fence each other back and forth. Kafka keeps no
free-form topic metadata (it refuses unknown topic configs), so the layout is a small record on
``<topic>.layout`` (one partition, kept forever, within the ACL prefix of the service's own
topics), written by the first writer to start. A writer whose topic or settings no longer match
it refuses to start.

The first record after the last tombstone wins, so replicas racing on a first start agree on
one; re-scaling the writers on purpose is: stop them all, `forget_layout`, start them all.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from clinical_platform.clients.kafka import KafkaConnection, build_consumer, build_producer
from clinical_platform.eventlog.errors import TopicLayoutError
from clinical_platform.eventlog.topics import TopicSpec, ensure_topic

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicLayout:
    """What routing depends on: the topic's partition count and its writers' replica count."""

    partitions: int
    writer_replicas: int

    def describe(self) -> str:
        return f"{self.partitions} partitions and {self.writer_replicas} writer replicas"


def layout_topic(topic: str) -> str:
    return f"{topic}.layout"


def layout_topic_spec(
    topic: str, *, replication_factor: int = 1, min_insync_replicas: int = 1
) -> TopicSpec:
    return TopicSpec(
        name=layout_topic(topic),
        partitions=1,
        replication_factor=replication_factor,
        configs={
            "retention.ms": "-1",
            "retention.bytes": "-1",
            # Not compacted: compaction would keep the latest record, and the first one wins.
            "cleanup.policy": "delete",
            "min.insync.replicas": str(min_insync_replicas),
            "unclean.leader.election.enable": "false",
        },
    )


async def check_layout(
    kafka: KafkaConnection,
    admin: AIOKafkaAdminClient,
    topic: str,
    actual: TopicLayout,
    *,
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
) -> None:
    """Record ``actual`` as the topic's layout if none is, else raise `TopicLayoutError` unless
    it matches the recorded one."""
    spec = layout_topic_spec(
        topic, replication_factor=replication_factor, min_insync_replicas=min_insync_replicas
    )
    await ensure_topic(admin, spec)
    recorded = await recorded_layout(kafka, topic)
    if recorded is None:
        await _send(kafka, topic, json.dumps(asdict(actual)).encode())
        recorded = await recorded_layout(kafka, topic)
        logger.info("event topic layout recorded", extra={"topic": topic, **asdict(actual)})
    if recorded != actual:
        raise TopicLayoutError(
            f"event topic {topic} was laid out for {recorded.describe() if recorded else '?'}, "
            f"but now has {actual.partitions} partitions and this replica counts "
            f"{actual.writer_replicas} writer replicas: aggregates would move or writers fence "
            "each other, so this writer refuses to start (docs/security.md, partition count drift)"
        )


async def recorded_layout(kafka: KafkaConnection, topic: str) -> TopicLayout | None:
    """The first layout recorded after the last tombstone; None when there is none."""
    source = TopicPartition(layout_topic(topic), 0)
    consumer = build_consumer(kafka)
    await consumer.start()
    try:
        consumer.assign([source])
        await consumer.seek_to_beginning(source)
        end = (await consumer.end_offsets([source]))[source]
        recorded: TopicLayout | None = None
        while await consumer.position(source) < end:
            fetched = await consumer.getmany(source, timeout_ms=1000)
            for record in fetched.get(source, []):
                if record.value is None:
                    recorded = None
                elif recorded is None:
                    recorded = _decoded(record.value, record.offset)
        return recorded
    finally:
        await consumer.stop()


async def forget_layout(kafka: KafkaConnection, topic: str) -> None:
    """A tombstone: the next writer to start records its layout (re-scaling on purpose)."""
    await _send(kafka, topic, None)


async def _send(kafka: KafkaConnection, topic: str, value: bytes | None) -> None:
    producer = build_producer(kafka)
    await producer.start()
    try:
        await producer.send_and_wait(layout_topic(topic), value, key=topic.encode(), partition=0)
    finally:
        await producer.stop()


def _decoded(value: bytes, offset: int) -> TopicLayout | None:
    try:
        fields = json.loads(value)
        return TopicLayout(int(fields["partitions"]), int(fields["writer_replicas"]))
    except (ValueError, KeyError, TypeError):
        # Anyone able to produce here could write bytes that are no layout: not one to follow.
        logger.warning("undecodable layout record skipped", extra={"offset": offset})
        return None
