"""``backup``: every system-of-record topic from offset 0 to its end, and the key store.

Read with read_committed, as every consumer and verifier reads, up to the end each partition
had when the backup began (its last stable offset): records written meanwhile belong to the
next backup. Files are written before the manifest, which is written last.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import hvac
from aiokafka import AIOKafkaConsumer, TopicPartition

from clinical_platform.backup.key_store import export_key_store, save_entries
from clinical_platform.backup.manifest import (
    KeyStoreCopy,
    Manifest,
    PartitionCopy,
    TopicCopy,
    file_sha256,
    write_manifest,
)
from clinical_platform.backup.records import CopiedRecord, encode
from clinical_platform.backup.topics import checkpoint_keys, record_topics
from clinical_platform.clients.kafka import KafkaConnection, build_admin, build_consumer
from clinical_platform.eventlog.topics import partition_count
from clinical_platform.security.checkpoints import CHECKPOINTS_TOPIC

Progress = Callable[[str, int, int], None]
"""(what, done, total): offsets copied of a topic, or entries of the key store."""

KEY_STORE_FILE = "vault/key-store.json"


@dataclass(frozen=True)
class BackupPlan:
    event_logs: Sequence[str]
    access_topics: Sequence[str]
    key_store_mount: str


class BackupTargetError(Exception):
    """The backup folder cannot take a backup (it holds one, or is no folder)."""


async def back_up(
    folder: Path, kafka: KafkaConnection, vault: hvac.Client, plan: BackupPlan,
    on_progress: Progress | None = None,
) -> Manifest:  # fmt: skip
    """Copy the plan's topics and key store into ``folder`` (new or empty) and return the
    manifest written there."""
    _check_empty(folder)
    progress = on_progress or (lambda _what, _done, _total: None)
    partitions = await _existing_partitions(
        kafka, record_topics(plan.event_logs, plan.access_topics)
    )
    copies: list[TopicCopy] = []
    consumer = build_consumer(kafka)
    await consumer.start()
    try:
        for topic, count in partitions.items():
            keep = None
            if topic == CHECKPOINTS_TOPIC:
                keep = checkpoint_keys([t for t in partitions if t != topic], partitions)
            copies.append(await _copy_topic(consumer, folder, topic, count, keep, progress))
    finally:
        await consumer.stop()
    store = _copy_key_store(folder, vault, plan.key_store_mount, progress)
    manifest = Manifest(datetime.now(UTC).isoformat(), tuple(copies), store)
    write_manifest(folder, manifest)
    return manifest


def _check_empty(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise BackupTargetError("the backup path is a file, not a folder")
    if folder.exists() and any(folder.iterdir()):
        raise BackupTargetError("the backup folder is not empty: back up into a new folder")
    folder.mkdir(parents=True, exist_ok=True)


async def _existing_partitions(kafka: KafkaConnection, names: Sequence[str]) -> dict[str, int]:
    admin = build_admin(kafka)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        return {name: await partition_count(admin, name) for name in names if name in existing}
    finally:
        await admin.close()


async def _copy_topic(  # noqa: PLR0917 - one private call site, arguments by position
    consumer: AIOKafkaConsumer, folder: Path, topic: str, partitions: int,
    keep: set[bytes] | None, progress: Progress,
) -> TopicCopy:  # fmt: skip
    sources = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(sources)
    starts = await consumer.beginning_offsets(sources)
    ends = await consumer.end_offsets(sources)
    total = sum(ends[s] - starts[s] for s in sources)
    done = 0
    progress(topic, done, total)
    copied: list[PartitionCopy] = []
    dropped = False
    for source in sources:
        name = f"topics/{topic}/{source.partition}.jsonl"
        read, kept = await _copy_partition(consumer, source, starts[source], ends[source],
                                           folder / name, keep)  # fmt: skip
        dropped |= kept != read
        copied.append(PartitionCopy(
            partition=source.partition, start_offset=starts[source], end_offset=ends[source],
            records=kept, file=name, sha256=file_sha256(folder / name),
        ))  # fmt: skip
        done += ends[source] - starts[source]
        progress(topic, done, total)
    return TopicCopy(topic, tuple(copied), offsets_preserved=not dropped)


async def _copy_partition(  # noqa: PLR0917 - one private call site, arguments by position
    consumer: AIOKafkaConsumer, source: TopicPartition, start: int, end: int, path: Path,
    keep: set[bytes] | None,
) -> tuple[int, int]:  # fmt: skip
    """Stream ``[start, end)`` into ``path`` as fetched (a partition need not fit in memory);
    (records read, records kept)."""
    consumer.seek(source, start)
    read = kept = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        while await consumer.position(source) < end:
            fetched = await consumer.getmany(source, timeout_ms=1000, max_records=1000)
            for record in (r for r in fetched.get(source, []) if r.offset < end):
                read += 1
                if keep is None or record.key in keep:
                    out.write(encode(CopiedRecord.of(record)) + "\n")
                    kept += 1
    return read, kept


def _copy_key_store(
    folder: Path, vault: hvac.Client, mount: str, progress: Progress
) -> KeyStoreCopy:
    entries = export_key_store(vault, mount)
    path = folder / KEY_STORE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    save_entries(path, entries)
    total = entries.count("patients") + entries.count("forgotten")
    progress(f"vault {mount}", total, total)
    return KeyStoreCopy(
        mount=mount, file=KEY_STORE_FILE, sha256=file_sha256(path),
        patients=entries.count("patients"), forgotten=entries.count("forgotten"),
    )  # fmt: skip
