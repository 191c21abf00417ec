"""A local failure after a Kafka commit (the local store refusing the write) forks nothing: the
writer drops its producer and catches up from the topic before the next append."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.eventlog import make_envelope, read_topic
from clinical_testing.plugin import TopicFactory, unique_name

from clinical_platform.eventlog.appends import PendingAppend
from clinical_platform.eventlog.errors import EventLogUnavailableError
from clinical_platform.eventlog.local_store import AppliedRecord, PartitionStore
from clinical_platform.eventlog.writer import PartitionWriter, WriterConfig
from clinical_platform.security.chain import verify_chain

pytestmark = pytest.mark.integration


class StoreThatFillsUp(PartitionStore):
    """The local store as a full disk leaves it: the first write after a commit fails."""

    def __init__(self, path: Path, topic: str, partition: int) -> None:
        super().__init__(path, topic, partition)
        self.failures_left = 1

    def apply(self, records: list[AppliedRecord]) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise sqlite3.OperationalError("database or disk is full")
        super().apply(records)


def _append(aggregate_id: str, version: int, request_id: str) -> PendingAppend:
    envelope = make_envelope(aggregate_id, version, request_id)
    return PendingAppend(aggregate_id, version - 1, request_id, [envelope])


async def test_a_retry_after_a_post_commit_store_failure_answers_the_first_outcome(
    servers: ServerEndpoints, kafka_topic: TopicFactory, tmp_path: Path
) -> None:
    topic = await kafka_topic()
    store = StoreThatFillsUp(tmp_path / "p0.sqlite", topic, 0)
    config = WriterConfig(servers.kafka, topic, 0, unique_name("test-writer-"), commit_timeout_s=5)
    writer = PartitionWriter(config, store)
    await writer.start()
    aggregate_id = str(uuid.uuid4())
    try:
        with pytest.raises(EventLogUnavailableError):
            await writer.append(_append(aggregate_id, 1, "req-1"))

        retried = await writer.append(_append(aggregate_id, 1, "req-1"))
        following = await writer.append(_append(aggregate_id, 2, "req-2"))
    finally:
        await writer.stop()
        store.close()

    assert (retried.version, retried.replayed) == (1, True)
    assert (following.version, following.replayed) == (2, False)
    on_topic = await read_topic(servers.kafka_bootstrap_servers, topic)
    assert [(e.aggregate_version, e.request_id) for e in on_topic] == [(1, "req-1"), (2, "req-2")]
    assert verify_chain(on_topic).ok
