"""The commit-order merge on the real broker: records of several topics and partitions come
out in the order their writes were acknowledged, and handled ones are committed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.plugin import TopicFactory, unique_name

from clinical_platform.clients.kafka import build_consumer, build_producer
from clinical_platform.consumers import consume_in_commit_order

pytestmark = pytest.mark.integration
WAIT_S = 30.0


async def until_true(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_records_of_several_topics_come_out_in_acknowledgement_order(
    servers: ServerEndpoints, kafka_topic: TopicFactory
) -> None:
    connection = servers.kafka
    causes = await kafka_topic(prefix="test.causes.", partitions=2)
    effects = await kafka_topic(prefix="test.effects.", partitions=3)
    producer = build_producer(connection)
    await producer.start()
    written: list[str] = []
    try:
        last_ms = 0
        for number in range(30):
            topic, partitions = (causes, 2) if number % 2 == 0 else (effects, 3)
            # Each write after the previous one's acknowledgement, as a command after another.
            last_ms = max(int(time.time() * 1000), last_ms + 1)
            value = f"{number:02d}"
            await producer.send_and_wait(
                topic, value.encode(), partition=(number * 7) % partitions, timestamp_ms=last_ms
            )
            written.append(value)
    finally:
        await producer.stop()

    handled: list[str] = []

    async def handle(record: ConsumerRecord[bytes, bytes]) -> None:
        handled.append((record.value or b"").decode())

    group = unique_name("commit-order-")
    merging = asyncio.create_task(
        consume_in_commit_order(connection, [causes, effects], group=group, handle=handle)
    )
    try:

        async def all_handled() -> bool:
            return len(handled) >= len(written)

        await until_true(all_handled, "every record")
        checker = build_consumer(connection, group_id=group)
        await checker.start()
        try:
            assigned = [TopicPartition(causes, p) for p in range(2)] + [
                TopicPartition(effects, p) for p in range(3)
            ]

            async def all_committed() -> bool:
                committed = [await checker.committed(tp) or 0 for tp in assigned]
                return sum(committed) == len(written)

            await until_true(all_committed, "the handled records' offsets committed")
        finally:
            await checker.stop()
    finally:
        merging.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await merging

    assert handled == written
