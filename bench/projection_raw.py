"""The orders projection's pace against the floor: raw getmany + bulk_write of the same documents.

A backlog of OrderPlaced events (payloads encrypted under a few patients' Vault keys, as a
service writes them) sits on a 3-partition topic. The raw side reads it with a plain
``read_committed`` consumer and bulk-inserts the documents the projection would write (computed
beforehand: no decoding, no decryption). The projection side is a `ProjectionRunner` of the
orders projection, with the cipher. Both rates run from the first record in hand to the last
document written. Then a burst on the live runner: how long after the burst's last send the
projection has applied everything (its lag back to zero).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.patients import patient_registry
from pymongo import AsyncMongoClient, InsertOne
from pymongo.asynchronous.database import AsyncDatabase

from bench.topics import create_topic, delete_topics
from clinical.events.v1 import orders_events_pb2 as events
from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.clients.kafka import KafkaConnection, build_consumer, build_producer
from clinical_platform.projections import ProjectionRunner, VersionedChange, dead_letter_topic
from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.security.wiring import running_security
from orders.adapters.order_projection import OrdersProjection
from orders.settings import OrdersSettings

PARTITIONS = 3
PATIENTS = 20
_DONE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class ProjectionRun:
    events: int
    prefilled: int
    projection_eps: float
    raw_eps: float
    burst: int
    lag_after_burst_s: float
    scanning_queries: int
    """Of the orders read model's query shapes, how many ``explain`` shows scanning the table."""


class _Timed:
    """The orders projection, noting when its runner handed it the first event."""

    def __init__(self, projection: OrdersProjection) -> None:
        self.inner = projection
        self.name = projection.name
        self.topics = projection.topics
        self.collections = projection.collections
        self.first: float | None = None

    async def setup(self, db: AsyncDatabase[Any]) -> None:
        await self.inner.setup(db)

    def changes(self, envelope: Envelope) -> Sequence[VersionedChange]:
        if self.first is None:
            self.first = time.perf_counter()
        return self.inner.changes(envelope)

    async def apply(self, envelope: Envelope, db: AsyncDatabase[Any]) -> None:
        await self.inner.apply(envelope, db)


async def measure_projection(
    servers: ServerEndpoints, *, events: int, prefill: int, burst: int
) -> ProjectionRun:
    run = uuid.uuid4().hex[:12]
    topic, kafka = f"bench.projection.{run}", servers.kafka
    async with _database(servers, f"bench_{run}_projection") as database, _topic(servers, topic):
        settings = OrdersSettings.model_validate(
            {
                "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap_servers,
                "VAULT_ADDR": servers.vault_addr, "VAULT_TOKEN": servers.vault_token,
                "MONGODB_URL": servers.mongodb_url, "grpc_port": 0,
            }
        )  # fmt: skip
        projection = _Timed(OrdersProjection(name=f"bench-{run}", topic=topic))
        await projection.setup(database)
        await _prefill(database, "orders", prefill)
        async with patient_registry(settings) as registry:  # orders seals no other patient's
            patients = [await registry.register() for _ in range(PATIENTS)]
        async with running_security(settings) as security:
            backlog = await _placed(security.cipher, projection, patients, events)
            await _produce(kafka, topic, [envelope for envelope, _ in backlog])
            raw_eps = await _raw(kafka, topic, database, [document for _, document in backlog])
            runner = ProjectionRunner(
                projection, kafka=kafka, database=database, cipher=security.cipher
            )
            task = asyncio.create_task(runner.run())
            try:
                await _applied(runner, events)
                if projection.first is None:
                    raise RuntimeError("the runner applied events it never asked about")
                projection_eps = events / (time.perf_counter() - projection.first)
                more = await _placed(security.cipher, projection, patients, burst)
                await _produce(kafka, topic, [envelope for envelope, _ in more])
                sent = time.perf_counter()
                await _applied(runner, events + burst)
                lag_s = time.perf_counter() - sent
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        scanning = await _scanning_queries(database, backlog[0][1])
    return ProjectionRun(events, prefill, projection_eps, raw_eps, burst, lag_s, scanning)


async def _scanning_queries(database: AsyncDatabase[Any], order: dict[str, Any]) -> int:
    """The read model's query shapes (GetOrder, ListOrders with and without a status) whose
    plan scans the collection or filters outside the database."""
    shapes = [
        {"filter": {"_id": order["_id"]}},
        {"filter": {"patient_id": order["patient_id"], "forgotten": {"$ne": True}},
         "sort": {"placed_at": -1, "_id": 1}},
        {"filter": {"patient_id": order["patient_id"], "status": "draft"},
         "sort": {"placed_at": -1, "_id": 1}},
    ]  # fmt: skip
    scanning = 0
    for shape in shapes:
        plan = await database.command("explain", {"find": "orders", **shape})
        # PostgreSQL names a full read "Seq Scan"; SQLite's plan steps say "SCAN <table>".
        steps = str(plan.get("queryPlanner", {}).get("Plan", ""))
        if "Seq Scan" in steps or "'SCAN " in steps or not plan.get("filterPushdown", True):
            scanning += 1
    return scanning


async def _placed(
    cipher: EnvelopeCipher, projection: _Timed, patients: list[str], count: int
) -> list[tuple[Envelope, dict[str, Any]]]:
    """``count`` encrypted OrderPlaced envelopes over ``patients`` (registered), each with the
    document it projects to."""
    now = datetime.now(UTC)
    placed = []
    for n in range(count):
        payload = events.OrderPlaced(
            patient_id=patients[n % len(patients)], priority="routine", orderer="bench-clinician",
            test=events.OrderedTest(code="2345-7", display="Glucose [Mass/volume] in Serum"),
            reasons=[events.OrderReasonCode(system="icd10", code="R73.9")],
        )  # fmt: skip
        payload.placed_at.FromDatetime(now)
        envelope = Envelope(
            event_id=str(uuid.uuid4()), event_type="OrderPlaced", aggregate_type="Order",
            aggregate_id=str(uuid.uuid4()), aggregate_version=1,
            patient_id=payload.patient_id, payload=payload.SerializeToString(),
        )  # fmt: skip
        (change,) = projection.inner.changes(envelope)
        await cipher.encrypt(envelope)
        placed.append((envelope, change.document()))
    return placed


async def _produce(kafka: KafkaConnection, topic: str, envelopes: list[Envelope]) -> None:
    producer = build_producer(kafka, linger_ms=5)
    await producer.start()
    try:
        sends = [
            await producer.send(topic, e.SerializeToString(), key=e.aggregate_id.encode())
            for e in envelopes
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def _raw(
    kafka: KafkaConnection, topic: str, database: AsyncDatabase[Any], documents: list[Any]
) -> float:
    """Read the backlog and bulk-insert the precomputed documents; events per second."""
    by_key = {document["_id"]: document for document in documents}
    consumer = build_consumer(kafka)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        written, first = 0, None
        while written < len(documents):
            batch = await consumer.getmany(timeout_ms=1000, max_records=1000)
            first = first or time.perf_counter()
            writes = [
                InsertOne(by_key[record.key.decode()] | {"_id": f"raw-{record.key.decode()}"})
                for records in batch.values()
                for record in records
                if record.key is not None
            ]
            if writes:
                # Into the read model's own collection (its indexes, its size), under other ids:
                # the projection writes these orders afterwards, into a collection larger by them.
                await database["orders"].bulk_write(writes, ordered=False)
            written += len(writes)
        return written / (time.perf_counter() - (first or 0.0))
    finally:
        await consumer.stop()


async def _applied(runner: ProjectionRunner, count: int) -> None:
    deadline = time.perf_counter() + _DONE_TIMEOUT_S
    while runner.applier is None or runner.applier.applied < count:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the projection applied fewer than {count} events")
        await asyncio.sleep(0.005)


async def _prefill(database: AsyncDatabase[Any], collection: str, count: int) -> None:
    """``count`` unrelated orders, each of its own patient: the read model of a busy clinic."""
    for start in range(0, count, 10_000):
        documents = [
            {"_id": str(uuid.uuid4()), "version": 2, "patient_id": str(uuid.uuid4()),
             "status": "signed", "test": {"code": "2345-7", "display": "Glucose"},
             "priority": "routine", "orderer": "bench-clinician",
             "placed_at": datetime.now(UTC)}
            for _ in range(min(10_000, count - start))
        ]  # fmt: skip
        await database[collection].insert_many(documents, ordered=False)


@asynccontextmanager
async def _database(servers: ServerEndpoints, name: str) -> AsyncIterator[AsyncDatabase[Any]]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(servers.mongodb_url, tz_aware=True)
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


@asynccontextmanager
async def _topic(servers: ServerEndpoints, topic: str) -> AsyncIterator[None]:
    await create_topic(servers.kafka_bootstrap_servers, topic, partitions=PARTITIONS)
    try:
        yield
    finally:
        await delete_topics(servers.kafka_bootstrap_servers, [topic, dead_letter_topic(topic)])
