"""Projections subscribed by topic pattern, and projections of records that are not Envelopes."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.eventlog import make_envelope
from clinical_testing.kafka import delete_topics
from clinical_testing.plugin import TopicFactory
from clinical_testing.waiting import eventually
from google.protobuf.wrappers_pb2 import StringValue
from pymongo.asynchronous.database import AsyncDatabase

from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.clients.kafka import KafkaConnection, build_producer
from clinical_platform.projections import MessageProjection, ProjectionRunner, rebuild_projection
from clinical_platform.projections.runner import dead_letter_topic

pytestmark = pytest.mark.integration


class EnvelopeIds:
    """Remembers every event id of every topic the runner's pattern matches."""

    def __init__(self) -> None:
        self.name = f"envelope-ids-{uuid.uuid4().hex[:8]}"
        self.topics: Sequence[str] = ()
        self.collections: Sequence[str] = ("events",)

    async def setup(self, db: AsyncDatabase[Any]) -> None:
        return None

    async def apply(self, envelope: Envelope, db: AsyncDatabase[Any]) -> None:
        await db["events"].update_one({"_id": envelope.event_id}, {"$set": {}}, upsert=True)


class Notes:
    """A projection of plain StringValue records: a `MessageProjection`."""

    def __init__(self, topic: str) -> None:
        self.name = f"notes-{uuid.uuid4().hex[:8]}"
        self.topics: Sequence[str] = (topic,)
        self.collections: Sequence[str] = ("notes",)

    async def setup(self, db: AsyncDatabase[Any]) -> None:
        return None

    def decode(self, value: bytes) -> StringValue:
        note = StringValue.FromString(value)
        if not note.value:
            raise ValueError("an empty note")
        return note

    async def apply(self, message: StringValue, db: AsyncDatabase[Any]) -> None:
        await db["notes"].update_one({"_id": message.value}, {"$set": {}}, upsert=True)


@contextlib.asynccontextmanager
async def running(runner: ProjectionRunner) -> AsyncIterator[None]:
    task = asyncio.create_task(runner.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = build_producer(KafkaConnection(bootstrap))
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()


async def _delete_dead_letter_topics(bootstrap: str, *topics: str) -> None:
    await delete_topics(bootstrap, [dead_letter_topic(t) for t in topics])


async def _count(db: AsyncDatabase[Any], collection: str, expected: int) -> int:
    async def enough() -> int | None:
        count = int(await db[collection].count_documents({}))
        return count if count >= expected else None

    return await eventually(enough, within_s=30) or int(await db[collection].count_documents({}))


async def test_a_pattern_runner_reads_every_matching_topic_and_rebuilds_them(
    servers: ServerEndpoints, kafka_topic: TopicFactory, mongo_database: AsyncDatabase[Any]
) -> None:
    prefix = f"test.pattern.{uuid.uuid4().hex[:8]}."
    first, second = await kafka_topic(prefix=prefix), await kafka_topic(prefix=prefix)
    other = await kafka_topic(prefix="test.unrelated.")
    bootstrap = servers.kafka_bootstrap_servers
    for topic in (first, second, other):
        envelope = make_envelope(str(uuid.uuid4()), 1, "req-1")
        await _produce(bootstrap, topic, [envelope.SerializeToString()])
    projection = EnvelopeIds()
    pattern = f"^{prefix.replace('.', '[.]')}[0-9a-f]+$"
    runner = ProjectionRunner(
        projection, kafka=servers.kafka, database=mongo_database, topic_pattern=pattern
    )

    async with running(runner):
        live = await _count(mongo_database, "events", 2)
    replayed = await rebuild_projection(projection, kafka=servers.kafka,
                                        database=mongo_database, progress=False,
                                        topic_pattern=pattern)  # fmt: skip

    rebuilt = await mongo_database["events"].count_documents({})
    await _delete_dead_letter_topics(bootstrap, first, second)

    assert live == 2
    assert replayed == 2
    assert rebuilt == 2


async def test_a_message_projection_decodes_its_records_and_quarantines_poison(
    servers: ServerEndpoints, kafka_topic: TopicFactory, mongo_database: AsyncDatabase[Any]
) -> None:
    topic = await kafka_topic(prefix="test.notes.")
    bootstrap = servers.kafka_bootstrap_servers
    values = [StringValue(value=v).SerializeToString() for v in ("a", "", "b")]
    await _produce(bootstrap, topic, values)
    projection: MessageProjection[StringValue] = Notes(topic)
    runner = ProjectionRunner(projection, kafka=servers.kafka, database=mongo_database)

    async with running(runner):
        notes = await _count(mongo_database, "notes", 2)
        await eventually(
            lambda: runner.applier is not None and runner.applier.dead_lettered == 1, within_s=10
        )

    await _delete_dead_letter_topics(bootstrap, topic)

    assert notes == 2
    assert runner.applier is not None
    assert runner.applier.dead_lettered == 1
