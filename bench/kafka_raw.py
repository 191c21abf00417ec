"""The broker's own pace: a plain idempotent producer, no transactions, no local store."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from uuid import uuid4

from aiokafka import AIOKafkaProducer

from bench.topics import create_topic, delete_topics

# Smaller than the bench counter's envelopes (about 400 bytes plus 240 of headers): the raw
# figures are the broker's pace for small records, not a replay of the append path.
_VALUE = os.urandom(200)
BATCH_MESSAGES = 1000


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
        # acks=all + idempotence: the settings the event store's producers use.
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True
        )
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
    # The event store's producer settings (writer.transactional_producer), minus its timeouts.
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        transactional_id=f"{topic}.transactions",
        linger_ms=0,
        compression_type="zstd",
    )
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
