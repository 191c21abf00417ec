"""Only the partition's own writer's records are attested: a forged envelope produced straight to
the event topic is named by verification, and the genuine event after it is not blamed."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.eventlog import make_envelope
from clinical_testing.kafka import delete_topics, publish_envelopes
from clinical_testing.plugin import TopicFactory, TransitKeyFactory, unique_name
from clinical_testing.waiting import eventually

from clinical.audit.v1.checkpoint_pb2 import Checkpoint
from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.eventlog.hash_chain import seal
from clinical_platform.eventlog.layout import layout_topic
from clinical_platform.eventlog.partitioning import PartitionOwnership
from clinical_platform.eventlog.ports import WriterRecords
from clinical_platform.eventlog.store import EventStore, EventStoreConfig
from clinical_platform.security.chain import VerificationReport
from clinical_platform.security.checkpoint_log import (
    CheckpointRunnerConfig,
    PartitionCheckpointRunner,
    StoredRecord,
    read_checkpoints,
    read_partition,
)
from clinical_platform.security.checkpoints import CheckpointPolicy
from clinical_platform.security.vault_adapters import TransitSigner
from clinical_platform.security.verification import verify_partition

pytestmark = pytest.mark.integration


@dataclass
class AttestedStore:
    """An event store on a one-partition topic whose writer is attested by a checkpoint runner."""

    store: EventStore
    checkpoints_topic: str
    signer: TransitSigner
    servers: ServerEndpoints

    async def read(self) -> tuple[list[StoredRecord], list[Checkpoint]]:
        kafka, topic = self.servers.kafka, self.store.topic
        records = await read_partition(kafka, topic, 0)
        checkpoints = await read_checkpoints(kafka, self.checkpoints_topic, topic, 0)
        return records, checkpoints

    async def attested_through(self, offset: int) -> tuple[list[StoredRecord], list[Checkpoint]]:
        """The partition and its checkpoints, once a checkpoint covers ``offset``."""

        async def covered() -> tuple[list[StoredRecord], list[Checkpoint]] | None:
            records, checkpoints = await self.read()
            if checkpoints and checkpoints[-1].last_offset >= offset:
                return records, checkpoints
            return None

        read = await eventually(covered, within_s=20, interval_s=0.5)
        assert read is not None, f"no checkpoint covered offset {offset} in time"
        return read

    async def verify(self) -> VerificationReport:
        records, checkpoints = await self.read()
        return await verify_partition(
            records, checkpoints, self.signer, topic=self.store.topic, partition=0
        )


@pytest.fixture
async def attested_store(
    servers: ServerEndpoints, kafka_topic: TopicFactory, vault: hvac.Client,
    transit_key: TransitKeyFactory, tmp_path: Path,
) -> AsyncIterator[AttestedStore]:  # fmt: skip
    checkpoints_topic = await kafka_topic(prefix="test.checkpoints.")
    signer = TransitSigner(vault, transit_key(key_type="ed25519"))

    def checkpoint_runner(
        topic: str, partition: int, writer: WriterRecords
    ) -> PartitionCheckpointRunner:
        policy = CheckpointPolicy(every_events=1000, every_seconds=0.5)
        config = CheckpointRunnerConfig(
            servers.kafka, topic, partition, policy, checkpoints_topic=checkpoints_topic
        )
        return PartitionCheckpointRunner(config, signer, writer)

    config = EventStoreConfig(
        service=unique_name("test-"),
        kafka=servers.kafka,
        ownership=PartitionOwnership(0, 1, "test-{ordinal}:50000"),
        state_dir=tmp_path / "state",
        partitions=1,
        commit_timeout_s=5.0,
    )
    store = EventStore(config, attester_factory=checkpoint_runner)
    await store.start()
    try:
        yield AttestedStore(store, checkpoints_topic, signer, servers)
    finally:
        await store.stop()
        await delete_topics(
            servers.kafka_bootstrap_servers, [store.topic, layout_topic(store.topic)]
        )


def _forged_successor(head: Envelope) -> Envelope:
    """What an insider with broker access can write: the aggregate's next version, chained onto
    its head's hash, with any actor, sent with a plain producer."""
    forged = make_envelope(head.aggregate_id, head.aggregate_version + 1, "forged-request")
    forged.event_type = "NoteRetracted"
    forged.actor.subject = "someone-else"
    seal(forged, head.hash)
    return forged


async def test_a_forged_record_is_named_by_its_offset_and_the_next_genuine_append_is_not_blamed(
    attested_store: AttestedStore, servers: ServerEndpoints, caplog: pytest.LogCaptureFixture
) -> None:
    store, aggregate_id = attested_store.store, str(uuid.uuid4())
    for version in (1, 2):
        request = f"req-{version}"
        await store.append(
            aggregate_id, version - 1, [make_envelope(aggregate_id, version, request)]
        )
    head = store.history(aggregate_id).envelopes[-1]
    await publish_envelopes(servers.kafka_bootstrap_servers, store.topic, _forged_successor(head))
    # The writer never saw the forgery: the clinician's real next command is version 3 too.
    with caplog.at_level(logging.WARNING):
        await store.append(aggregate_id, 2, [make_envelope(aggregate_id, 3, "req-3")])
        records, _ = await attested_store.read()
        await attested_store.attested_through(records[-1].offset)

    report = await attested_store.verify()

    request_ids = [Envelope.FromString(r.value or b"").request_id for r in records]
    assert request_ids == ["req-1", "req-2", "forged-request", "req-3"]
    forged_offset = records[2].offset
    assert not report.ok
    assert report.first_bad_offset == forged_offset, report.findings
    assert [finding.offset for finding in report.findings] == [forged_offset]
    assert "not its writer's" in (report.reason or "")
    assert any("not written by the partition's writer" in r.message for r in caplog.records)
