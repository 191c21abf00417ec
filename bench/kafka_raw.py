"""The broker's own pace: a plain idempotent producer, no transactions, no local store."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from uuid import uuid4

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.topics import create_topic, delete_topics
from clinical_platform.clients.kafka import KafkaConnection, build_consumer, build_producer
from clinical_platform.eventlog.writer import WriterConfig, transactional_producer

# Smaller than the bench counter's envelopes (about 400 bytes plus 240 of headers): the raw
# figures are the broker's pace for small records, not a replay of the append path.
_VALUE = os.urandom(200)
BATCH_MESSAGES = 1000
_LATENCY_WARMUP_MESSAGES = 20
# Generous: a message this late is a failure worth seeing, not a latency sample.
_RECEIPT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class KafkaRun:
    send_and_wait_per_s: float
    """One message at a time: each waits for its acknowledgement before the next is sent."""
    batched_per_s: float
    """`BATCH_MESSAGES` sends fired at once, then all their acknowledgements awaited."""
    transactions_per_s: float
    """One message per transaction, back to back: a partition writer's commit loop, bare."""


async def measure_kafka(bootstrap_servers: str, *, seconds: float) -> KafkaRun:
    """Both rates on a throwaway single-partition topic, deleted afterwards."""
    topic = f"bench.raw.{uuid4().hex[:12]}"
    await create_topic(bootstrap_servers, topic, partitions=1)
    try:
        # The builder's acks=all + idempotence: the settings the event store's producers use.
        producer = build_producer(KafkaConnection(bootstrap_servers))
        await producer.start()
        try:
            # Warm-up: metadata for the new topic, the connection, the producer id.
            await asyncio.gather(*[await producer.send(topic, _VALUE) for _ in range(100)])
            one_at_a_time = await _send_and_wait_rate(producer, topic, seconds)
            batched = await _batched_rate(producer, topic, seconds)
        finally:
            await producer.stop()
        transactions = await _transaction_rate(bootstrap_servers, topic, seconds)
    finally:
        await delete_topics(bootstrap_servers, [topic])
    return KafkaRun(one_at_a_time, batched, transactions)


async def _send_and_wait_rate(producer: AIOKafkaProducer, topic: str, seconds: float) -> float:
    sent = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        await producer.send_and_wait(topic, _VALUE)
        sent += 1
    return sent / (time.perf_counter() - started)


async def _batched_rate(producer: AIOKafkaProducer, topic: str, seconds: float) -> float:
    sent = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        acknowledgements = [await producer.send(topic, _VALUE) for _ in range(BATCH_MESSAGES)]
        await asyncio.gather(*acknowledgements)
        sent += BATCH_MESSAGES
    return sent / (time.perf_counter() - started)


async def _transaction_rate(bootstrap_servers: str, topic: str, seconds: float) -> float:
    # The partition writers' own producer factory, so every option (acks=all, idempotence,
    # backoffs, compression, timeouts) is the one the event store commits with.
    writer = WriterConfig(
        kafka=KafkaConnection(bootstrap_servers),
        topic=topic,
        partition=0,
        transactional_id=f"{topic}.transactions",
    )
    producer = transactional_producer(writer)
    await producer.start()
    try:
        committed = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            async with producer.transaction():
                await producer.send(topic, _VALUE)
            committed += 1
        return committed / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def measure_kafka_latency(bootstrap_servers: str, *, messages: int) -> list[float]:
    """Producer to consumer, one message in flight: from just before ``send_and_wait`` to the
    consumer holding the record (seconds), on a throwaway single-partition topic."""
    topic = f"bench.raw.{uuid4().hex[:12]}"
    await create_topic(bootstrap_servers, topic, partitions=1)
    try:
        kafka = KafkaConnection(bootstrap_servers)
        producer = build_producer(kafka)
        # The builder's consumer: read_committed, what every consumer of the event topics uses.
        consumer = build_consumer(kafka)
        await producer.start()
        await consumer.start()
        try:
            partition = TopicPartition(topic, 0)
            consumer.assign([partition])
            await consumer.seek_to_end(partition)
            await consumer.position(partition)  # positioned before the first send
            await _round_trips(producer, consumer, topic, _LATENCY_WARMUP_MESSAGES)
            return await _round_trips(producer, consumer, topic, messages)
        finally:
            await consumer.stop()
            await producer.stop()
    finally:
        await delete_topics(bootstrap_servers, [topic])


async def _round_trips(
    producer: AIOKafkaProducer, consumer: AIOKafkaConsumer, topic: str, messages: int
) -> list[float]:
    latencies: list[float] = []
    for _ in range(messages):
        # The consumer waits from before the send, so its receipt is not delayed by the ack.
        receipt = asyncio.create_task(_receive(consumer))
        await asyncio.sleep(0)
        sent = time.perf_counter()
        await producer.send_and_wait(topic, _VALUE)
        received = await asyncio.wait_for(receipt, _RECEIPT_TIMEOUT_S)
        latencies.append(received - sent)
    return latencies


async def _receive(consumer: AIOKafkaConsumer) -> float:
    await consumer.getone()
    return time.perf_counter()
