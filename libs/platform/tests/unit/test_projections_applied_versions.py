"""Read-your-writes signalling: reads for "at least version N" wake when a runner announces N."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from clinical_platform.eventlog.partitioning import partition_for
from clinical_platform.projections import AppliedVersions, applied_versions

pytestmark = pytest.mark.unit

TOPIC = "clinical.sample.events.v1"
PARTITIONS = 3
AGGREGATE = "6f1d0c1e-4a57-4c43-9a55-2f7c35a0e9b1"


class Documents:
    """A read model's collection in memory, counting the reads it serves."""

    def __init__(self) -> None:
        self.versions: dict[str, int] = {}
        self.reads = 0

    def reader(self, document_id: str) -> Callable[[], Awaitable[dict[str, Any] | None]]:
        async def read() -> dict[str, Any] | None:
            self.reads += 1
            version = self.versions.get(document_id)
            return None if version is None else {"_id": document_id, "version": version}

        return read


def version_of(document: dict[str, Any] | None) -> int:
    version: int = 0 if document is None else document["version"]
    return version


def consumed_here(applied: AppliedVersions, runner: object) -> None:
    """``runner`` consumes every partition of the topic, the aggregate's included."""
    applied.assigned(runner, TOPIC, range(PARTITIONS), PARTITIONS)
    assert applied.consumed_here(AGGREGATE)


async def test_a_read_for_version_n_returns_once_the_runner_announces_n() -> None:
    applied, documents, runner = AppliedVersions(), Documents(), object()
    consumed_here(applied, runner)
    documents.versions[AGGREGATE] = 1
    read = asyncio.create_task(
        applied.read_at_least(AGGREGATE, 2, documents.reader(AGGREGATE), version_of, timeout_s=30)
    )
    await asyncio.sleep(0)  # the read looked once and now waits
    documents.versions[AGGREGATE] = 2
    applied.publish([(AGGREGATE, 2)])

    assert await read == {"_id": AGGREGATE, "version": 2}
    # One look before the announcement, one after: no polling in between.
    assert documents.reads == 2


async def test_an_older_version_announced_does_not_end_the_wait() -> None:
    applied, documents, runner = AppliedVersions(), Documents(), object()
    consumed_here(applied, runner)
    read = asyncio.create_task(
        applied.read_at_least(AGGREGATE, 3, documents.reader(AGGREGATE), version_of, timeout_s=30)
    )
    await asyncio.sleep(0)
    documents.versions[AGGREGATE] = 2
    applied.publish([(AGGREGATE, 2), ("another-aggregate", 9)])
    await asyncio.sleep(0)
    assert not read.done()

    documents.versions[AGGREGATE] = 3
    applied.publish([(AGGREGATE, 3)])
    assert await read == {"_id": AGGREGATE, "version": 3}


async def test_a_version_never_applied_ends_the_wait_empty_handed() -> None:
    applied, documents, runner = AppliedVersions(), Documents(), object()
    consumed_here(applied, runner)
    documents.versions[AGGREGATE] = 1

    found = await applied.read_at_least(
        AGGREGATE, 2, documents.reader(AGGREGATE), version_of, timeout_s=0.05
    )

    assert found is None


async def test_a_write_applied_in_another_process_is_found_by_reading_again() -> None:
    applied, documents = AppliedVersions(), Documents()
    assert not applied.consumed_here(AGGREGATE)  # no runner here: the projector runs apart
    read = asyncio.create_task(
        applied.read_at_least(AGGREGATE, 1, documents.reader(AGGREGATE), version_of, timeout_s=30)
    )
    await asyncio.sleep(0)
    documents.versions[AGGREGATE] = 1  # written by the other process; nothing announced here

    assert await read == {"_id": AGGREGATE, "version": 1}


async def test_a_partition_another_replica_consumes_falls_back_to_reading_again() -> None:
    applied, documents, runner = AppliedVersions(), Documents(), object()
    others = [p for p in range(PARTITIONS) if p != partition_for(AGGREGATE, PARTITIONS)]
    applied.assigned(runner, TOPIC, others, PARTITIONS)
    assert not applied.consumed_here(AGGREGATE)
    read = asyncio.create_task(
        applied.read_at_least(AGGREGATE, 1, documents.reader(AGGREGATE), version_of, timeout_s=30)
    )
    await asyncio.sleep(0)
    documents.versions[AGGREGATE] = 1

    assert await read == {"_id": AGGREGATE, "version": 1}


async def test_a_stopped_runner_leaves_its_partitions_to_the_fallback() -> None:
    applied, runner = AppliedVersions(), object()
    consumed_here(applied, runner)

    applied.withdraw(runner)

    assert not applied.consumed_here(AGGREGATE)


async def test_version_zero_reads_whatever_is_there_now() -> None:
    applied, documents = AppliedVersions(), Documents()

    found = await applied.read_at_least(
        AGGREGATE, 0, documents.reader(AGGREGATE), version_of, timeout_s=30
    )

    assert found is None
    assert documents.reads == 1


def test_each_collection_has_one_set_of_applied_versions_per_process() -> None:
    assert applied_versions("db.orders") is applied_versions("db.orders")
    assert applied_versions("db.orders") is not applied_versions("other.orders")
