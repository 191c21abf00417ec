"""Kafka in tests: clients built by the kernel's builders, and whole topics read back.

Helpers take a `KafkaConnection`, or the bootstrap servers as a string (reached with the KAFKA_*
security of the environment, which the test session sets), and build their clients through
`clinical_platform.clients.kafka`, as services do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

from aiokafka import ConsumerRecord, TopicPartition

from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.clients.kafka import (
    KafkaConnection,
    build_admin,
    build_consumer,
    build_producer,
)
from clinical_platform.eventlog.layout import layout_topic
from clinical_platform.eventlog.topics import events_topic, partition_count
from clinical_platform.projections import dead_letter_topic

Broker: TypeAlias = KafkaConnection | str
"""A connection, or bootstrap servers to reach with the environment's KAFKA_* security."""


def connection(broker: Broker) -> KafkaConnection:
    return broker if isinstance(broker, KafkaConnection) else KafkaConnection(broker)


async def read_records(
    bootstrap: Broker, topic: str, *, committed: bool = True
) -> list[ConsumerRecord[Any, Any]]:
    """Every record on the topic, partition by partition, from offset 0: only the committed
    ones, or with ``committed=False`` also those of open and aborted transactions."""
    kafka = connection(bootstrap)
    partitions = await _partitions(kafka, topic)
    isolation = "read_committed" if committed else "read_uncommitted"
    consumer = build_consumer(kafka, isolation_level=isolation)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord[Any, Any]] = []
        for partition in partitions:
            while await consumer.position(partition) < ends[partition]:
                fetched = await consumer.getmany(partition, timeout_ms=1000)
                records += fetched.get(partition, [])
        return records
    finally:
        await consumer.stop()


async def publish_envelopes(bootstrap: Broker, topic: str, *envelopes: Envelope) -> None:
    """Send ``envelopes`` to ``topic`` one by one, keyed by aggregate id, as a foreign writer
    (outside any transaction) would."""
    producer = build_producer(connection(bootstrap))
    await producer.start()
    try:
        for envelope in envelopes:
            key = envelope.aggregate_id.encode()
            await producer.send_and_wait(topic, envelope.SerializeToString(), key=key)
    finally:
        await producer.stop()


async def record_values(bootstrap: Broker, topic: str, *, committed: bool = True) -> list[bytes]:
    """The values of every record on the topic, undecoded (a poison record is no Envelope)."""
    return [record.value for record in await read_records(bootstrap, topic, committed=committed)]


async def offsets_used(bootstrap: Broker, topic: str) -> int:
    """The sum of the topic's high watermarks: every record written, aborted or not, counts."""
    kafka = connection(bootstrap)
    partitions = await _partitions(kafka, topic)
    consumer = build_consumer(kafka, isolation_level="read_uncommitted")
    await consumer.start()
    try:
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def _partitions(kafka: KafkaConnection, topic: str) -> list[TopicPartition]:
    admin = build_admin(kafka)
    await admin.start()
    try:
        return [TopicPartition(topic, p) for p in range(await partition_count(admin, topic))]
    finally:
        await admin.close()


async def delete_topics(bootstrap: Broker, topics: Sequence[str]) -> None:
    """Delete the topics a test created (those that exist)."""
    admin = build_admin(connection(bootstrap))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        if doomed := [topic for topic in topics if topic in existing]:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


async def delete_event_log(bootstrap: Broker, event_log_name: str, *upstream_topics: str) -> None:
    """Delete a test service's event topic and its layout, its dead letters and those of the
    topics it read."""
    topic = events_topic(event_log_name)
    read = (topic, *upstream_topics)
    doomed = [topic, layout_topic(topic), *(dead_letter_topic(name) for name in read)]
    await delete_topics(bootstrap, doomed)
