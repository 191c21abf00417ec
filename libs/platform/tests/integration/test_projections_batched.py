"""Batched projections on the real broker and MongoDB server: a poll's events written in bulk,
in order per aggregate, poison quarantined alone, and reads woken by the runner's announcement."""

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
from clinical_platform.eventlog.context import Actor, CommandContext
from clinical_platform.eventlog.repository import AggregateRepository
from clinical_platform.projections import (
    ProjectionRunner,
    VersionedChange,
    apply_changes,
    upsert_versioned,
    wait_for_version,
    write_changes,
)
from clinical_platform.security.envelope_cipher import EnvelopeCipher

pytestmark = pytest.mark.integration

COUNTERS = "counters"


class CounterChanges:
    """Test projection: one document per counter, its count and the versions seen, as changes."""

    def __init__(self, topic: str, *, poisoned: str = "") -> None:
        self.name = f"counter-changes-{uuid.uuid4().hex[:8]}"
        self.topics: Sequence[str] = (topic,)
        self.collections: Sequence[str] = (COUNTERS,)
        self._poisoned = poisoned

    async def setup(self, db: AsyncDatabase[Any]) -> None:
        """Nothing beyond the primary key."""

    def changes(self, envelope: Envelope) -> list[VersionedChange]:
        if envelope.aggregate_id == self._poisoned:
            raise ValueError("this counter's events are refused")
        version = envelope.aggregate_version
        return [
            VersionedChange(
                COUNTERS, envelope.aggregate_id, version, {"count": version - 1},
                extra_update={"$push": {"seen": version}},
            )
        ]  # fmt: skip

    async def apply(self, envelope: Envelope, db: AsyncDatabase[Any]) -> None:
        await apply_changes(db, self.changes(envelope))


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


async def test_a_backlog_is_applied_in_order_per_aggregate_and_poison_goes_alone(
    servers: ServerEndpoints,
    event_store: EventStoreFactory,
    mongo_database: AsyncDatabase[Any],
    vault_cipher: EnvelopeCipher,
) -> None:
    store = await event_store()
    repo = AggregateRepository(
        store, COUNTER_EVENTS, source="//clinical/test",
        cipher=vault_cipher, patient_of=lambda _counter: "",
    )  # fmt: skip
    counters = [uuid.uuid4() for _ in range(4)]
    poisoned = counters[-1]
    # The backlog exists before the runner starts: its first polls hold several events of
    # each counter, which must land in order (every version pushed once, ascending).
    for counter in counters:
        await _count_to(repo, counter, 5)
    projection = CounterChanges(store.topic, poisoned=str(poisoned))
    runner = ProjectionRunner(
        projection, kafka=servers.kafka, database=mongo_database, cipher=vault_cipher
    )

    async with running(runner):
        for counter in counters[:-1]:
            assert await wait_for_version(
                mongo_database[COUNTERS], str(counter), 5, timeout_s=30
            )  # fmt: skip

    documents = await mongo_database[COUNTERS].find().to_list()
    assert sorted(d["_id"] for d in documents) == sorted(str(c) for c in counters[:-1])
    assert all(d["seen"] == [1, 2, 3, 4, 5] and d["count"] == 4 for d in documents)
    assert runner.applier is not None
    assert runner.applier.dead_lettered == 5


async def test_a_read_for_a_version_returns_once_the_runner_here_applied_it(
    servers: ServerEndpoints,
    event_store: EventStoreFactory,
    mongo_database: AsyncDatabase[Any],
    vault_cipher: EnvelopeCipher,
) -> None:
    store = await event_store()
    repo = AggregateRepository(
        store, COUNTER_EVENTS, source="//clinical/test",
        cipher=vault_cipher, patient_of=lambda _counter: "",
    )  # fmt: skip
    runner = ProjectionRunner(
        CounterChanges(store.topic), kafka=servers.kafka, database=mongo_database,
        cipher=vault_cipher,
    )  # fmt: skip
    counter = uuid.uuid4()

    async with running(runner):
        for n in range(1, 4):
            version = await _count_to(repo, counter, n)
            document = await wait_for_version(
                mongo_database[COUNTERS], str(counter), version, timeout_s=30
            )
            assert document is not None
            assert document["version"] == version
        never = await wait_for_version(
            mongo_database[COUNTERS], str(counter), version + 1, timeout_s=0.2
        )

    assert never is None  # the application turns this into ReadModelBehind


async def test_a_write_from_another_process_ends_the_wait_without_an_announcement(
    mongo_database: AsyncDatabase[Any],
) -> None:
    counters = mongo_database[COUNTERS]
    counter = str(uuid.uuid4())
    waiting = asyncio.create_task(wait_for_version(counters, counter, 2, timeout_s=30))
    await upsert_versioned(counters, counter, 1, {"count": 0})
    await upsert_versioned(counters, counter, 2, {"count": 1})

    document = await waiting

    assert document is not None
    assert document["count"] == 1


async def test_changes_written_again_are_skipped_not_refused(
    mongo_database: AsyncDatabase[Any],
) -> None:
    counter = str(uuid.uuid4())
    changes = [
        VersionedChange(COUNTERS, counter, v, {"count": v - 1}, {"$push": {"seen": v}})
        for v in (1, 2, 3)
    ]
    assert await write_changes(mongo_database, changes) == set()

    again = await write_changes(mongo_database, [*changes, changes[0]])

    assert again == set()
    document = await mongo_database[COUNTERS].find_one({"_id": counter})
    assert document is not None
    assert document["seen"] == [1, 2, 3]
