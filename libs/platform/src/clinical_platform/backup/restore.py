"""``restore``: a backup into an empty cluster and key store, every record at its offset.

Everything that can refuse is checked before the first write: the manifest and every file's
SHA-256, that no copied topic holds records on the target and the key store is empty, and that
each partition's offsets can be reproduced (`offsets.plan_writes`). Then the topics are created
with their partition counts, the key store entries written, and each partition's records sent
with their keys, headers and timestamps, in order, in transactions that end where the original
ones did, so checkpoints signed over the original offsets verify the restored log.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import hvac
from aiokafka import AIOKafkaProducer, TopicPartition

from clinical_platform.backup.copy import Progress
from clinical_platform.backup.key_store import import_key_store, key_store_is_empty, load_entries
from clinical_platform.backup.manifest import (
    Manifest,
    ManifestError,
    PartitionCopy,
    TopicCopy,
    check_files,
    read_manifest,
)
from clinical_platform.backup.offsets import Action, Step, plan_writes, sequential_offsets
from clinical_platform.backup.records import CopiedRecord, read_records
from clinical_platform.backup.topics import restored_topic_spec
from clinical_platform.clients.kafka import (
    KafkaConnection,
    build_admin,
    build_consumer,
    build_producer,
)
from clinical_platform.eventlog.topics import ensure_topic, partition_count

_MARKER_WAIT_S = 30.0


class RestoreRefusedError(Exception):
    """The target is not empty, or the backup cannot be restored as it is: nothing written."""


class RestoreDivergedError(Exception):
    """A record landed at another offset than it had: someone else wrote to the topic."""


@dataclass(frozen=True)
class RestorePlan:
    key_store_mount: str
    replication_factor: int = 1
    min_insync_replicas: int = 1


@dataclass(frozen=True)
class _PartitionWrite:
    """A partition's schedule; its records are read from ``path`` again while it is written."""

    topic: str
    copy: PartitionCopy
    path: Path
    steps: list[Step]
    offsets_preserved: bool


async def restore(
    folder: Path, kafka: KafkaConnection, vault: hvac.Client, plan: RestorePlan,
    on_progress: Progress | None = None,
) -> Manifest:  # fmt: skip
    """Restore the backup in ``folder``; the manifest restored. Raises `ManifestError` for a
    backup that is no longer the one its manifest describes and `RestoreRefusedError` for a
    target that is not empty; both before anything is written."""
    progress = on_progress or (lambda _what, _done, _total: None)
    manifest = read_manifest(folder)
    check_files(folder, manifest)
    writes = [w for topic in manifest.topics for w in _planned(folder, topic)]
    await _refuse_unless_empty(kafka, vault, manifest, plan)
    await _create_topics(kafka, manifest.topics, plan)
    if manifest.key_store is not None:
        entries = load_entries(folder / manifest.key_store.file)
        await asyncio.to_thread(import_key_store, vault, plan.key_store_mount, entries)
    async with _Producers(kafka) as producers:
        for topic in manifest.topics:
            total = (
                sum(p.end_offset for p in topic.partitions)
                if topic.offsets_preserved
                else topic.records
            )
            done = 0
            progress(topic.name, done, total)
            for write in (w for w in writes if w.topic == topic.name):
                await producers.write(write)
                done += write.copy.end_offset if write.offsets_preserved else write.copy.records
                progress(topic.name, done, total)
    return manifest


def _planned(folder: Path, topic: TopicCopy) -> list[_PartitionWrite]:
    planned = []
    for copy in topic.partitions:
        path = folder / copy.file
        try:
            offsets = [record.offset for record in read_records(path)]
        except (ValueError, KeyError, TypeError) as malformed:
            msg = f"{copy.file} holds a malformed record ({type(malformed).__name__})"
            raise ManifestError(msg) from None
        if len(offsets) != copy.records:
            raise ManifestError(f"{copy.file} holds {len(offsets)} records, not {copy.records}")
        end = copy.end_offset
        if not topic.offsets_preserved:
            offsets, end = sequential_offsets(len(offsets))
        steps = plan_writes(offsets, end)  # OffsetLayoutError: refused before any write
        planned.append(_PartitionWrite(topic.name, copy, path, steps, topic.offsets_preserved))
    return planned


async def _refuse_unless_empty(
    kafka: KafkaConnection, vault: hvac.Client, manifest: Manifest, plan: RestorePlan
) -> None:
    admin = build_admin(kafka)
    await admin.start()
    consumer = build_consumer(kafka, isolation_level="read_uncommitted")
    await consumer.start()
    try:
        existing = set(await admin.list_topics())
        for topic in (t for t in manifest.topics if t.name in existing):
            count = await partition_count(admin, topic.name)
            if count != len(topic.partitions):
                copied = len(topic.partitions)
                msg = f"topic {topic.name} exists with {count} partitions, the backup has {copied}"
                raise RestoreRefusedError(msg)
            targets = [TopicPartition(topic.name, p) for p in range(count)]
            if any(end > 0 for end in (await consumer.end_offsets(targets)).values()):
                raise RestoreRefusedError(
                    f"topic {topic.name} already holds records: restore into an empty cluster"
                )
    finally:
        await consumer.stop()
        await admin.close()
    if manifest.key_store is not None and not await asyncio.to_thread(
        key_store_is_empty, vault, plan.key_store_mount
    ):
        raise RestoreRefusedError(f"the key store {plan.key_store_mount} already holds entries")


async def _create_topics(
    kafka: KafkaConnection, topics: Sequence[TopicCopy], plan: RestorePlan
) -> None:
    admin = build_admin(kafka)
    await admin.start()
    try:
        for topic in topics:
            await ensure_topic(admin, restored_topic_spec(
                topic.name, len(topic.partitions), replication_factor=plan.replication_factor,
                min_insync_replicas=plan.min_insync_replicas,
            ))  # fmt: skip
    finally:
        await admin.close()


class _Producers:
    """A plain producer and transactional ones started as a schedule needs them, one per slot
    (an open transaction), reused from partition to partition."""

    def __init__(self, kafka: KafkaConnection) -> None:
        self._kafka = kafka
        # A fresh id per restore: nothing left of an earlier, interrupted restore is fenced.
        self._prefix = f"clinical.restore.{secrets.token_hex(4)}"
        self._plain = build_producer(kafka)
        self._transactional: dict[int, AIOKafkaProducer] = {}
        self._ends = build_consumer(kafka, isolation_level="read_uncommitted")

    async def __aenter__(self) -> _Producers:
        await self._plain.start()
        await self._ends.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for producer in (self._plain, *self._transactional.values()):
            await producer.stop()
        await self._ends.stop()

    async def write(self, write: _PartitionWrite) -> None:
        target = TopicPartition(write.topic, write.copy.partition)
        in_transaction: set[int] = set()
        records = read_records(write.path)  # in order: sends take them one after another
        for step in write.steps:
            if step.action in {Action.SEND, Action.FILLER}:
                record = next(records) if step.action is Action.SEND else None
                producer = await self._for(step.slot, in_transaction)
                landed = await _send(producer, target, record)
                if write.offsets_preserved and landed != step.offset:
                    msg = (
                        f"{write.topic}/{write.copy.partition}: a record landed at offset "
                        f"{landed}, not {step.offset} (was the topic written meanwhile?)"
                    )
                    raise RestoreDivergedError(msg)
                continue
            producer = self._transactional[step.slot or 0]
            if step.action is Action.COMMIT:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
            in_transaction.discard(step.slot or 0)
            # The marker is written after the coordinator answers: the next send must not pass it.
            await self._until_end(target, step.offset + 1)

    async def _for(self, slot: int | None, in_transaction: set[int]) -> AIOKafkaProducer:
        if slot is None:
            return self._plain
        if slot not in self._transactional:
            producer = build_producer(self._kafka, transactional_id=f"{self._prefix}.{slot}")
            await producer.start()
            self._transactional[slot] = producer
        if slot not in in_transaction:
            await self._transactional[slot].begin_transaction()
            in_transaction.add(slot)
        return self._transactional[slot]

    async def _until_end(self, target: TopicPartition, end: int) -> None:
        deadline = asyncio.get_running_loop().time() + _MARKER_WAIT_S
        while (await self._ends.end_offsets([target]))[target] < end:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{target.topic}/{target.partition}: no transaction marker")
            await asyncio.sleep(0.005)


async def _send(
    producer: AIOKafkaProducer, target: TopicPartition, record: CopiedRecord | None
) -> int:
    if record is None:  # an aborted filler: it only takes an offset
        metadata = await producer.send_and_wait(target.topic, b"", partition=target.partition)
    else:
        metadata = await producer.send_and_wait(
            target.topic, record.value, key=record.key, partition=target.partition,
            timestamp_ms=record.timestamp, headers=list(record.headers),
        )  # fmt: skip
    return int(metadata.offset)
