"""Verifying whole event topics, one partition after another, for an operator at a terminal.

The audit service's Verify RPC answers every partition at once; `clinical admin verify` runs
this instead, in its own process with the audit service's settings, so it can show how far the
reading of each partition has got (reading is what takes the time: a partition is read whole,
then verified by `verify_partition`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from clinical_platform.clients.kafka import KafkaConnection, build_admin
from clinical_platform.eventlog.topics import partition_count
from clinical_platform.security.chain import VerificationReport
from clinical_platform.security.checkpoint_reads import read_checkpoints, read_partition
from clinical_platform.security.ports import Signer
from clinical_platform.security.verification import verify_partition

# (topic, partition, offsets read so far, offsets in the partition).
VerifyProgress = Callable[[str, int, int, int], None]


class UnknownTopicError(Exception):
    """No such topic on the cluster."""


@dataclass(frozen=True)
class PartitionReport:
    topic: str
    partition: int
    report: VerificationReport


async def topics_matching(kafka: KafkaConnection, pattern: str) -> list[str]:
    """The cluster's topics that ``pattern`` matches from their start, sorted."""
    admin = build_admin(kafka)
    await admin.start()
    try:
        # match(), not fullmatch(): the audit service's event_topic_pattern is anchored itself.
        return sorted(t for t in await admin.list_topics() if re.match(pattern, t))
    finally:
        await admin.close()


async def verify_topic(
    kafka: KafkaConnection, topic: str, signer: Signer, *, checkpoints_topic: str,
    on_progress: VerifyProgress | None = None,
) -> list[PartitionReport]:  # fmt: skip
    """Every partition of ``topic`` verified against its checkpoints, in partition order.

    Raises `UnknownTopicError`, and `KeyServiceUnavailableError` when Vault cannot check the
    signatures.
    """
    counts = await _partition_counts(kafka, topic, checkpoints_topic)
    if counts[topic] is None:
        raise UnknownTopicError(topic)
    reports = []
    for partition in range(counts[topic] or 0):

        def told(done: int, total: int, partition: int = partition) -> None:
            if on_progress is not None:
                on_progress(topic, partition, done, total)

        records = await read_partition(kafka, topic, partition, on_progress=told)
        checkpoints = (
            await read_checkpoints(kafka, checkpoints_topic, topic, partition)
            if counts[checkpoints_topic] is not None
            else []  # no checkpoint was ever written: every record is unattested
        )
        report = await verify_partition(
            records, checkpoints, signer, topic=topic, partition=partition
        )
        reports.append(PartitionReport(topic, partition, report))
    return reports


async def _partition_counts(kafka: KafkaConnection, *topics: str) -> dict[str, int | None]:
    admin = build_admin(kafka)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        return {t: await partition_count(admin, t) if t in existing else None for t in topics}
    finally:
        await admin.close()
