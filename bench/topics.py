"""Throwaway topics: created for one run, deleted at its end."""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.errors import for_code

from clinical_platform.clients.kafka import KafkaConnection, build_admin, build_consumer


async def create_topic(bootstrap_servers: str, name: str, partitions: int) -> None:
    """Create a topic with the broker's default configs; raise if the broker refuses."""
    admin = build_admin(KafkaConnection(bootstrap_servers))
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(name, partitions, replication_factor=1)])
    finally:
        await admin.close()
    for _name, error_code, *details in response.topic_errors:
        if error_code != 0:
            raise for_code(error_code)(f"cannot create topic {name}: {details}")


async def delete_topics(bootstrap_servers: str, names: list[str]) -> None:
    """Delete the topics; one that was never created is no error."""
    admin = build_admin(KafkaConnection(bootstrap_servers))
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


async def offsets_used(bootstrap_servers: str, topic: str, partitions: int) -> int:
    """Offsets taken on all partitions: one per record, and one per transaction marker."""
    # read_uncommitted: the end offsets are the high watermarks, past the last marker too.
    consumer = build_consumer(
        KafkaConnection(bootstrap_servers), isolation_level="read_uncommitted"
    )
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return sum(ends.values())
    finally:
        await consumer.stop()
