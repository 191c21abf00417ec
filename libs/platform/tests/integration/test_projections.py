"""Projections on the real broker and MongoDB server: order, idempotence, poison, rebuild."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from clinical_testing.counter import COUNTER_EVENTS, Counter, open_or_increment
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.eventlog import EventStoreFactory
from pymongo.asynchronous.database import AsyncDatabase

from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.clients.kafka import build_consumer, build_producer
from clinical_platform.eventlog.context import Actor, CommandContext
from clinical_platform.eventlog.repository import AggregateRepository
from clinical_platform.eventlog.store import EventStore
from clinical_platform.projections import (
    ProjectionRunner,
    dead_letter_topic,
    rebuild_projection,
    upsert_versioned,
    wait_for_version,
)
from clinical_platform.security.envelope_cipher import EnvelopeCipher

pytestmark = pytest.mark.integration


class CounterTotals:
    """Test projection: one document per counter with its count."""

    def __init__(self, topic: str) -> None:
        self.name = f"counter-totals-{uuid.uuid4().hex[:8]}"
        self.topics: Sequence[str] = (topic,)
        self.collections: Sequence[str] = ("counters",)

    async def setup(self, db: AsyncDatabase[Any]) -> None:
        await db["counters"].create_index("count")

    async def apply(self, envelope: Envelope, db: AsyncDatabase[Any]) -> None:
        if envelope.event_type not in ("CounterOpened", "CounterIncremented"):
            raise ValueError("not a counter event")
        await upsert_versioned(
            db["counters"],
            envelope.aggregate_id,
            envelope.aggregate_version,
            {"count": envelope.aggregate_version - 1},
        )


@contextlib.asynccontextmanager
async def running(runner: ProjectionRunner) -> AsyncIterator[None]:
    task = asyncio.create_task(runner.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _count_to(repo: AggregateRepository[Counter], counter_id: uuid.UUID, n: int) -> int:
    version = 0
    for i in range(n):
        context = CommandContext(actor=Actor("test"), request_id=f"{counter_id}-{i}")
        version = (await repo.execute(counter_id, context, open_or_increment(counter_id))).version
    return version


async def test_projection_follows_the_log_skips_poison_and_rebuilds_identically(
    servers: ServerEndpoints,
    event_store: EventStoreFactory,
    mongo_database: AsyncDatabase[Any],
    vault_cipher: EnvelopeCipher,
) -> None:
    store: EventStore = await event_store()
    repo = AggregateRepository(
        store, COUNTER_EVENTS, source="//clinical/test",
        cipher=vault_cipher, patient_of=lambda _counter: "",  # counters are about no patient
    )  # fmt: skip
    projection = CounterTotals(store.topic)
    runner = ProjectionRunner(projection, kafka=servers.kafka, database=mongo_database)
    counters = [uuid.uuid4() for _ in range(3)]

    async with running(runner):
        versions = [await _count_to(repo, counter, 4) for counter in counters]
        poison = build_producer(servers.kafka)
        await poison.start()
        await poison.send_and_wait(store.topic, b"\xff not an envelope", key=b"poison", partition=0)
        await poison.stop()
        late = await _count_to(repo, counters[0], 6)
        reached = await wait_for_version(
            mongo_database["counters"], str(counters[0]), late, timeout_s=30
        )
        for counter, version in zip(counters[1:], versions[1:], strict=True):
            assert await wait_for_version(
                mongo_database["counters"], str(counter), version, timeout_s=30
            )

    assert reached is not None
    assert reached["count"] == 5
    live = await mongo_database["counters"].find().sort("_id").to_list()
    assert sorted(doc["count"] for doc in live) == [3, 3, 5]
    assert await _dead_letters(servers, store.topic) == [b"\xff not an envelope"]

    replayed = await rebuild_projection(
        projection,
        kafka=servers.kafka,
        database=mongo_database,
        progress=False,
    )
    rebuilt = await mongo_database["counters"].find().sort("_id").to_list()

    # 12 events, 2 more on the first counter (its first 4 requests were replays), the poison.
    assert replayed == 15
    assert rebuilt == live


async def _dead_letters(servers: ServerEndpoints, topic: str) -> list[bytes]:
    consumer = build_consumer(servers.kafka, dead_letter_topic(topic), consumer_timeout_ms=1000)
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=5000)
        return [record.value for records in batch.values() for record in records]
    finally:
        await consumer.stop()
