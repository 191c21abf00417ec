"""Replay a projection's dead letters: apply again, after a fix, the events it set aside.

A poison event is copied to ``<topic>.dlq`` with its origin in ``dlq_*`` headers (`quarantine`).
The replay reads each of the projection's dead-letter topics from where its last replay stopped
(the consumer group ``projection.<name>.dead-letters``) to the end it finds on starting, turns
every record back into the record it was on the source topic, and hands it to the projection's
`EventApplier`, exactly as the runner would have. The projections are idempotent by aggregate
version, so an event the read model already reflects changes nothing, and the replay may run
beside the live projections. An event that fails again is set aside again, as a new record at
the end of the dead-letter topic (the next replay's), and counted as still failing. Offsets are
committed after every batch: a replay stopped midway resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from pymongo.asynchronous.database import AsyncDatabase

from clinical_platform.clients.kafka import KafkaConnection
from clinical_platform.clients.mongo import build_mongo_client
from clinical_platform.projections.applier import AnyProjection, dead_letter_topic
from clinical_platform.projections.rebuild import projection_applier
from clinical_platform.projections.runner import (
    group_id,
)
from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.security.wiring import running_security
from clinical_platform.settings import RecordServiceSettings

# (projection name, dead letters replayed so far, dead letters to replay).
ReplayProgress = Callable[[str, int, int], None]
_ORIGIN_HEADERS = ("dlq_topic", "dlq_partition", "dlq_offset")


@dataclass(frozen=True)
class ReplayReport:
    """``applied`` now reflected by the read model (or already were); ``still_failing`` set
    aside again."""

    projection: str
    replayed: int = 0
    applied: int = 0
    still_failing: int = 0


async def replay_read_model(
    settings: RecordServiceSettings, projections: Sequence[AnyProjection], *,
    on_progress: ReplayProgress | None = None,
) -> list[ReplayReport]:  # fmt: skip
    """Replay the dead letters of each projection with the service's connections and keys."""
    # Payloads are encrypted: the projections decrypt with the service's keys.
    async with running_security(settings) as security:
        mongo = build_mongo_client(settings)
        kafka = KafkaConnection.from_settings(settings)
        database = mongo[settings.mongodb_database]
        try:
            return [
                await replay_dead_letters(projection, kafka=kafka, database=database,
                                          cipher=security.cipher, on_progress=on_progress)
                for projection in projections
            ]  # fmt: skip
        finally:
            await mongo.close()


def replay_group_id(projection: AnyProjection) -> str:
    """Where replays of the projection's dead letters commit how far they got."""
    return f"{group_id(projection)}.dead-letters"


async def replay_dead_letters(
    projection: AnyProjection, *, kafka: KafkaConnection, database: AsyncDatabase[Any],
    cipher: EnvelopeCipher | None = None, on_progress: ReplayProgress | None = None,
) -> ReplayReport:  # fmt: skip
    """Apply the dead letters of the projection's topics not replayed before; the counts."""
    applying = projection_applier(projection, projection.topics, kafka=kafka, database=database,
                                  cipher=cipher, group=replay_group_id(projection))  # fmt: skip
    async with applying as (consumer, applier):
        partitions = [TopicPartition(dead_letter_topic(t), 0) for t in projection.topics]
        consumer.assign(partitions)
        starts = await _resume_points(consumer, partitions)
        ends = await consumer.end_offsets(partitions)
        total = sum(ends[p] - starts[p] for p in partitions)
        done = 0
        if on_progress is not None:
            on_progress(projection.name, done, total)
        for partition in partitions:
            consumer.seek(partition, starts[partition])
            while (position := await consumer.position(partition)) < ends[partition]:
                fetched = await consumer.getmany(partition, timeout_ms=1000, max_records=500)
                batch = [r for r in fetched.get(partition, []) if r.offset < ends[partition]]
                await applier.apply_batch([as_on_source(record) for record in batch])
                reached = min(await consumer.position(partition), ends[partition])
                await consumer.commit({partition: reached})
                done += reached - position
                if on_progress is not None:
                    on_progress(projection.name, done, total)
    return ReplayReport(projection.name, total, applier.applied, applier.dead_lettered)


async def _resume_points(
    consumer: Any, partitions: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    beginnings = await consumer.beginning_offsets(partitions)
    points = {}
    for partition in partitions:
        committed = await consumer.committed(partition)
        points[partition] = beginnings[partition] if committed is None else committed
    return points


def as_on_source(record: ConsumerRecord[bytes, bytes]) -> ConsumerRecord[bytes, bytes]:
    """The dead letter as the record it was on its source topic: topic, partition and offset
    from its ``dlq_*`` headers, which are dropped (set aside again, it gets fresh ones)."""
    headers = list(record.headers or ())
    origin = {name: value.decode() for name, value in headers if name in _ORIGIN_HEADERS}
    source = origin.get("dlq_topic") or record.topic.removesuffix(".dlq")
    return replace(
        record,
        topic=source,
        partition=_number(origin.get("dlq_partition"), record.partition),
        offset=_number(origin.get("dlq_offset"), record.offset),
        headers=tuple((n, v) for n, v in headers if not n.startswith("dlq_")),
    )


def _number(header: str | None, otherwise: int) -> int:
    # A header anyone able to produce could have written: a bad one must not stop the replay.
    return int(header) if header is not None and header.isdigit() else otherwise
