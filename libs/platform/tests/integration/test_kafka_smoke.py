"""The real Kafka broker accepts idempotent, fully acknowledged writes and manual commits."""

import pytest
from aiokafka import TopicPartition
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.plugin import TopicFactory, unique_name

from clinical_platform.clients.kafka import build_consumer, build_producer

pytestmark = pytest.mark.integration


async def test_idempotent_producer_writes_are_read_back_in_order(
    servers: ServerEndpoints, kafka_topic: TopicFactory
) -> None:
    topic = await kafka_topic(partitions=1)
    # The builder's producer: acks=all, idempotent.
    producer = build_producer(servers.kafka)
    await producer.start()
    try:
        for number in range(50):
            await producer.send_and_wait(topic, key=b"aggregate-1", value=str(number).encode())
    finally:
        await producer.stop()

    # The builder's consumer: from the earliest offset, read_committed, manual commits.
    consumer = build_consumer(servers.kafka, topic, group_id=unique_name("smoke-"))
    await consumer.start()
    try:
        values: list[bytes] = []
        while len(values) < 50:
            batch = await consumer.getmany(timeout_ms=5000)
            assert batch, "the broker stopped delivering before all 50 records arrived"
            values += [record.value for records in batch.values() for record in records]
        await consumer.commit()
        committed = await consumer.committed(TopicPartition(topic, 0))
    finally:
        await consumer.stop()

    assert values == [str(number).encode() for number in range(50)]
    assert committed == 50
