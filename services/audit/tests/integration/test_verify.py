"""Verify over gRPC: an untampered partition passes against its Transit-signed checkpoints; a
tampered copy is reported at its first bad offset."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from aiokafka.admin import NewTopic
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.eventlog import EventStoreFactory
from clinical_testing.plugin import unique_name
from clinical_testing.security import WriterOfEveryRecord

from clinical.audit.v1 import audit_pb2 as pb
from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.clients.kafka import KafkaConnection, build_admin, build_producer
from clinical_platform.clients.vault import build_vault_client
from clinical_platform.security.checkpoint_log import (
    CheckpointRunnerConfig,
    KafkaCheckpointPublisher,
    PartitionCheckpointRunner,
    StoredRecord,
    read_partition,
)
from clinical_platform.security.checkpoints import Checkpointer, CheckpointPolicy
from clinical_platform.security.vault_adapters import TransitSigner
from clinical_platform.security.verification import attested_hash
from clinical_platform.security.wiring import build_signer

pytestmark = pytest.mark.integration

Metadata = tuple[tuple[str, str], ...]
TAMPERED_AT = 3


@pytest.fixture
async def copy_topic(servers: ServerEndpoints) -> AsyncIterator[str]:
    """An empty one-partition topic named like an event topic, deleted afterwards."""
    name = f"clinical.{unique_name('copy-')}.events.v1"
    admin = build_admin(KafkaConnection(servers.kafka_bootstrap_servers))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


async def test_an_untampered_partition_verifies_and_a_tampered_copy_fails_where_changed(
    event_store: EventStoreFactory, audit_service: Any, append_event: Any, auditor: Metadata,
    copy_topic: str,
) -> None:  # fmt: skip
    store = await event_store(partitions=1)
    patient, order = str(uuid.uuid4()), str(uuid.uuid4())
    for version in range(1, 11):
        await append_event(store, patient, order, version)
    audit = await audit_service(store.topic, copy_topic)
    settings = audit.settings
    signer = build_signer(build_vault_client(settings), settings)  # the service's signing key
    kafka = KafkaConnection.from_settings(settings)
    records = await read_partition(kafka, store.topic, 0)
    await _attest(kafka, store.topic, audit.settings.checkpoints_topic, signer, records)
    await _tampered_copy(kafka, copy_topic, audit.settings.checkpoints_topic, signer, records)

    intact = await audit.stub.Verify(pb.VerifyRequest(topic=store.topic), metadata=auditor)
    tampered = await audit.stub.Verify(
        pb.VerifyRequest(topic=copy_topic, partitions=[0]), metadata=auditor
    )

    assert intact.ok, intact
    [partition] = intact.partitions
    assert (partition.records, partition.attested_through) == (10, records[-1].offset)
    assert not partition.HasField("first_bad_offset")
    assert not tampered.ok
    [copy] = tampered.partitions
    assert copy.first_bad_offset == TAMPERED_AT
    assert "differs from the record" in copy.reason
    assert copy.findings[0].offset == TAMPERED_AT


async def test_only_existing_event_topics_and_partitions_are_verified(
    audit_service: Any, auditor: Metadata, event_store: EventStoreFactory
) -> None:
    store = await event_store(partitions=1)
    ghost = f"clinical.{unique_name('ghost-')}.events.v1"
    audit = await audit_service(store.topic, ghost)

    requests = [
        pb.VerifyRequest(topic=ghost),
        pb.VerifyRequest(topic="__consumer_offsets"),
        pb.VerifyRequest(topic=store.topic, partitions=[1]),
    ]

    codes = [await _code(audit.stub.Verify(request, metadata=auditor)) for request in requests]

    assert codes == [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT,
                     grpc.StatusCode.INVALID_ARGUMENT]  # fmt: skip


async def _attest(
    kafka: KafkaConnection, topic: str, checkpoints_topic: str, signer: TransitSigner,
    records: list[StoredRecord],
) -> None:  # fmt: skip
    """Run the kernel's checkpoint runner until it has attested every record."""
    config = CheckpointRunnerConfig(
        kafka, topic, 0, CheckpointPolicy(every_events=4, every_seconds=0.5),
        checkpoints_topic=checkpoints_topic,
    )  # fmt: skip
    # The test produced the records itself, as the partition's writer.
    runner = PartitionCheckpointRunner(config, signer, WriterOfEveryRecord())
    await runner.start()
    try:
        for _ in range(200):
            done = runner.checkpointer
            if done and (done.next_offset, done.pending) == (records[-1].offset + 1, 0):
                break
            await asyncio.sleep(0.05)
    finally:
        await runner.stop(flush=False)


async def _tampered_copy(
    kafka: KafkaConnection, copy: str, checkpoints_topic: str, signer: TransitSigner,
    records: list[StoredRecord],
) -> None:  # fmt: skip
    """A restored "backup" of the partition whose record TAMPERED_AT had one payload byte
    flipped, with signed checkpoints of what the copy should hold."""
    producer = build_producer(kafka)
    await producer.start()
    try:
        for index, record in enumerate(records):
            value = record.value or b""
            if index == TAMPERED_AT:
                at = value.index(Envelope.FromString(value).payload) + 3
                value = value[:at] + bytes([value[at] ^ 0x01]) + value[at + 1 :]
            await producer.send_and_wait(copy, value, partition=0)
    finally:
        await producer.stop()
    attesting = build_producer(kafka, transactional_id=f"{copy}.p0.checkpoints")
    await attesting.start()
    try:
        checkpointer = Checkpointer(
            copy, 0, signer, KafkaCheckpointPublisher(attesting, checkpoints_topic),
            CheckpointPolicy(every_events=4, every_seconds=60),
        )  # fmt: skip
        for offset, record in enumerate(records):
            await checkpointer.observe(offset, attested_hash(record.value))
        await checkpointer.flush()
    finally:
        await attesting.stop()


async def _code(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await call
    code: grpc.StatusCode = failed.value.code()
    return code
