"""Checkpoints that survive what the checkpoints topic may hold and what an outage leaves
pending, on the real broker with Transit signatures."""

from __future__ import annotations

import logging

import hvac
import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.plugin import TopicFactory, TransitKeyFactory
from clinical_testing.security import WriterOfEveryRecord
from clinical_testing.waiting import eventually

from clinical.audit.v1.checkpoint_pb2 import Checkpoint
from clinical_platform.clients.kafka import build_producer
from clinical_platform.security.checkpoint_log import (
    CheckpointRunnerConfig,
    KafkaCheckpointPublisher,
    PartitionCheckpointRunner,
    read_checkpoints,
)
from clinical_platform.security.checkpoints import (
    Checkpointer,
    CheckpointPolicy,
    checkpoint_key,
    root_of,
    signed_statement,
)
from clinical_platform.security.vault_adapters import TransitSigner
from clinical_platform.security.verification import attested_hash, checkpoint_problems

pytestmark = pytest.mark.integration

# The broker's default message.max.bytes: a record above it is refused on every retry.
BROKER_MAX_MESSAGE_BYTES = 1_048_588


class Attesting:
    """A one-partition topic, a checkpoints topic and a Transit ed25519 signer of their own."""

    def __init__(
        self, servers: ServerEndpoints, topic: str, checkpoints_topic: str, signer: TransitSigner
    ) -> None:
        self.kafka = servers.kafka
        self.topic, self.checkpoints_topic, self.signer = topic, checkpoints_topic, signer

    async def produce(self, topic: str, values: list[bytes], key: bytes | None = None) -> None:
        producer = build_producer(self.kafka)
        await producer.start()
        try:
            for value in values:
                await producer.send_and_wait(topic, value, key=key, partition=0)
        finally:
            await producer.stop()

    async def attest(self, expected_next_offset: int) -> None:
        """Start a checkpoint runner, wait until it has checkpointed everything, stop it."""
        config = CheckpointRunnerConfig(
            self.kafka, self.topic, 0, CheckpointPolicy(every_events=100, every_seconds=0.5),
            checkpoints_topic=self.checkpoints_topic,
        )  # fmt: skip
        runner = PartitionCheckpointRunner(config, self.signer, WriterOfEveryRecord())
        await runner.start()
        try:
            done = await eventually(
                lambda: (
                    (checkpointer := runner.checkpointer) is not None
                    and (checkpointer.next_offset, checkpointer.pending)
                    == (expected_next_offset, 0)
                ),
                within_s=15,
            )
        finally:
            await runner.stop(flush=False)
        assert done, "the runner did not checkpoint every record in time"


@pytest.fixture
async def attesting(
    servers: ServerEndpoints, kafka_topic: TopicFactory, vault: hvac.Client,
    transit_key: TransitKeyFactory,
) -> Attesting:  # fmt: skip
    return Attesting(
        servers, await kafka_topic(), await kafka_topic(prefix="test.checkpoints."),
        TransitSigner(vault, transit_key(key_type="ed25519")),
    )  # fmt: skip


async def test_garbage_and_forged_checkpoints_under_the_key_are_skipped_on_start(
    attesting: Attesting, vault: hvac.Client, transit_key: TransitKeyFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    await attesting.produce(attesting.topic, [f"event {n}".encode() for n in range(5)])
    await attesting.attest(expected_next_offset=5)
    # Anyone able to produce to the checkpoints topic, under the partition's key: bytes that
    # are no checkpoint, then a well-formed one signed by a key of their own, claiming more.
    forged = Checkpoint(topic=attesting.topic, partition=0, first_offset=0, last_offset=999)
    forged.entries.add(offset=999, event_hash=attested_hash(b"forged"))
    forged.root = root_of(forged.entries)
    attacker = TransitSigner(vault, transit_key(key_type="ed25519"))
    forged.signing_key = attesting.signer.key_name
    forged.signature, forged.key_version = attacker.sign(signed_statement(forged))
    key = checkpoint_key(attesting.topic, 0)
    await attesting.produce(
        attesting.checkpoints_topic, [forged.SerializeToString(), b"not a checkpoint"], key=key
    )
    await attesting.produce(attesting.topic, [b"event 5"])

    with caplog.at_level(logging.WARNING):
        await attesting.attest(expected_next_offset=6)

    skipped = [r.getMessage() for r in caplog.records if "checkpoint record skipped" in r.message]
    assert len(skipped) == 2, skipped
    checkpoints = await read_checkpoints(
        attesting.kafka, attesting.checkpoints_topic, attesting.topic, 0
    )
    last = checkpoints[-1]
    assert (last.first_offset, last.last_offset, last.previous_root) == (5, 5, checkpoints[0].root)


async def test_a_backlog_past_25k_records_is_signed_in_chunks_below_the_message_limit(
    attesting: Attesting,
) -> None:
    producer = build_producer(attesting.kafka, transactional_id=f"{attesting.topic}.p0.checkpoints")
    await producer.start()
    try:
        checkpointer = Checkpointer(
            attesting.topic, 0, attesting.signer,
            KafkaCheckpointPublisher(producer, attesting.checkpoints_topic),
            CheckpointPolicy(every_events=10**9, every_seconds=3600),
        )  # fmt: skip
        # What piles up while Vault or the broker is away for a while.
        for offset in range(30_000):
            await checkpointer.observe(offset, attested_hash(f"event {offset}".encode()))
        await checkpointer.flush()
    finally:
        await producer.stop()

    checkpoints = await read_checkpoints(
        attesting.kafka, attesting.checkpoints_topic, attesting.topic, 0
    )
    assert sum(c.record_count for c in checkpoints) == 30_000
    assert max(c.ByteSize() for c in checkpoints) < BROKER_MAX_MESSAGE_BYTES // 4
    assert [c.previous_root for c in checkpoints] == [b"", *(c.root for c in checkpoints[:-1])]
    for checkpoint in checkpoints:
        problems = await checkpoint_problems(
            checkpoint, attesting.signer, topic=attesting.topic, partition=0
        )
        assert problems == []
