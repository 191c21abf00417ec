"""Tamper evidence on the real broker: sealed, encrypted events on a topic, checkpoints signed by
Transit, and every kind of tampering found at the right offset."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace

import hvac
import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.plugin import TopicFactory, TransitKeyFactory
from clinical_testing.security import WriterOfEveryRecord, patient_envelope
from clinical_testing.waiting import eventually
from google.protobuf.wrappers_pb2 import StringValue

from clinical.audit.v1.checkpoint_pb2 import Checkpoint
from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.clients.kafka import build_producer
from clinical_platform.eventlog.hash_chain import ChainSealer, seal
from clinical_platform.security.chain import VerificationReport
from clinical_platform.security.checkpoint_log import (
    CheckpointRunnerConfig,
    PartitionCheckpointRunner,
    StoredRecord,
    read_checkpoints,
    read_partition,
)
from clinical_platform.security.checkpoints import CheckpointPolicy, root_of, signed_statement
from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.security.errors import PatientForgottenError
from clinical_platform.security.keys import PatientKeyring
from clinical_platform.security.vault_adapters import (
    KvWrappedKeyStore,
    TransitKeyEncryption,
    TransitSigner,
)
from clinical_platform.security.verification import attested_hash, verify_partition

pytestmark = pytest.mark.integration

PATIENTS = [str(uuid.uuid4()), str(uuid.uuid4())]
Records = list[StoredRecord]


class AttestedPartition:
    """Ten encrypted, sealed events on a one-partition topic, and checkpoints over them."""

    def __init__(
        self, servers: ServerEndpoints, topic: str, checkpoints_topic: str, signer: TransitSigner,
        keyring: PatientKeyring,
    ) -> None:  # fmt: skip
        self.kafka = servers.kafka
        self.topic, self.checkpoints_topic = topic, checkpoints_topic
        self.signer, self.keyring = signer, keyring
        self.cipher = EnvelopeCipher(keyring, creates_keys=True)
        self.aggregates = [(str(uuid.uuid4()), PATIENTS[i % 2]) for i in range(3)]
        self.versions: dict[str, int] = {}
        self.heads: dict[str, bytes] = {}

    async def append(self, count: int) -> None:
        """Encrypt, seal and produce `count` events, round-robin over three aggregates."""
        producer = build_producer(self.kafka)
        await producer.start()
        try:
            for index in range(count):
                aggregate, patient = self.aggregates[index % 3]
                version = self.versions[aggregate] = self.versions.get(aggregate, 0) + 1
                envelope = patient_envelope(patient, aggregate, version, f"Jane Q. Doe #{index}")
                await self.cipher.encrypt(envelope)
                self.heads[aggregate] = seal(envelope, self.heads.get(aggregate, b""))
                await producer.send_and_wait(self.topic, envelope.SerializeToString(),
                                             key=aggregate.encode(), partition=0)  # fmt: skip
        finally:
            await producer.stop()

    async def attest(self, expected_next_offset: int) -> None:
        """Run a checkpoint runner until it has checkpointed everything, then stop it."""
        config = CheckpointRunnerConfig(
            self.kafka, self.topic, 0, CheckpointPolicy(every_events=4, every_seconds=0.5),
            checkpoints_topic=self.checkpoints_topic,
        )  # fmt: skip
        runner = PartitionCheckpointRunner(config, self.signer, WriterOfEveryRecord())
        await runner.start()
        try:
            await eventually(
                lambda: (
                    (done := runner.checkpointer) is not None
                    and (done.next_offset, done.pending) == (expected_next_offset, 0)
                ),
                within_s=10,
            )
        finally:
            await runner.stop(flush=False)

    async def verify(self, records: Records, checkpoints: list[Checkpoint]) -> VerificationReport:
        return await verify_partition(
            records, checkpoints, self.signer, topic=self.topic, partition=0
        )

    async def read(self) -> tuple[Records, list[Checkpoint]]:
        records = await read_partition(self.kafka, self.topic, 0)
        checkpoints = await read_checkpoints(self.kafka, self.checkpoints_topic, self.topic, 0)
        return records, checkpoints


@pytest.fixture
async def partition(
    servers: ServerEndpoints, kafka_topic: TopicFactory, vault: hvac.Client,
    transit_key: TransitKeyFactory, key_store_mount: str,
) -> AttestedPartition:  # fmt: skip
    keyring = PatientKeyring(
        TransitKeyEncryption(vault, transit_key()), KvWrappedKeyStore(vault, key_store_mount)
    )
    attested = AttestedPartition(
        servers, await kafka_topic(), await kafka_topic(prefix="test.checkpoints."),
        TransitSigner(vault, transit_key(key_type="ed25519")), keyring,
    )  # fmt: skip
    await attested.append(10)
    await attested.attest(expected_next_offset=10)
    return attested


def _envelope(record: StoredRecord) -> Envelope:
    return Envelope.FromString(record.value or b"")


def _flip_a_ciphertext_byte(records: Records, offset: int) -> Records:
    value = records[offset].value or b""
    at = value.index(_envelope(records[offset]).payload) + 3
    changed = value[:at] + bytes([value[at] ^ 0x01]) + value[at + 1 :]
    return [*records[:offset], replace(records[offset], value=changed), *records[offset + 1 :]]


def _drop(records: Records, offset: int) -> Records:
    return [record for record in records if record.offset != offset]


def _swap(records: Records, offset: int) -> Records:
    swapped = list(records)
    first, second = records[offset], records[offset + 1]
    swapped[offset] = replace(first, value=second.value)
    swapped[offset + 1] = replace(second, value=first.value)
    return swapped


def _insert_forgery(records: Records, offset: int) -> Records:
    """A well-formed event chained onto its aggregate, inserted; later records shift by one."""
    tail = _envelope(records[offset - 1])
    forged = Envelope()
    forged.CopyFrom(tail)
    forged.event_id = str(uuid.uuid4())
    forged.aggregate_version += 1
    seal(forged, tail.hash)
    shifted = [StoredRecord(r.offset + 1, r.value) for r in records[offset:]]
    return [*records[:offset], StoredRecord(offset, forged.SerializeToString()), *shifted]


TAMPERING: dict[str, tuple[Callable[[Records], Records], int]] = {
    "flipped byte": (lambda r: _flip_a_ciphertext_byte(r, 3), 3),
    "dropped event": (lambda r: _drop(r, 5), 5),
    "reordered events": (lambda r: _swap(r, 6), 6),
    "inserted event": (lambda r: _insert_forgery(r, 4), 4),
}


async def test_untampered_partition_verifies_against_transit_signed_checkpoints(
    partition: AttestedPartition,
) -> None:
    records, checkpoints = await partition.read()

    report = await partition.verify(records, checkpoints)

    assert [(c.first_offset, c.last_offset) for c in checkpoints] == [(0, 3), (4, 7), (8, 9)]
    assert report.ok, report.findings
    assert (report.records, report.attested_through, report.unattested) == (10, 9, 0)


@pytest.mark.parametrize("tampering", TAMPERING)
async def test_tampering_is_found_at_the_first_bad_offset(
    partition: AttestedPartition, tampering: str
) -> None:
    records, checkpoints = await partition.read()
    tamper, first_bad_offset = TAMPERING[tampering]

    report = await partition.verify(tamper(records), checkpoints)

    assert not report.ok
    assert report.first_bad_offset == first_bad_offset, report.findings


async def test_forged_checkpoint_covering_a_rewritten_event_is_found(
    partition: AttestedPartition, vault: hvac.Client, transit_key: TransitKeyFactory
) -> None:
    records, checkpoints = await partition.read()
    # The attacker rewrites event 2, re-seals it and forges checkpoint [0..3] to match, signing
    # with a key of their own: the chain and the root check out; the signature does not.
    victim = _envelope(records[2])
    victim.payload = StringValue(value="forged").SerializeToString()
    victim.ClearField("payload_encryption")
    ChainSealer(lambda _aggregate: victim.prev_hash).seal(victim)
    records[2] = StoredRecord(2, victim.SerializeToString())
    forged = Checkpoint()
    forged.CopyFrom(checkpoints[0])
    forged.entries[2].event_hash = attested_hash(records[2].value)
    forged.root = root_of(forged.entries)
    attacker = TransitSigner(vault, transit_key(key_type="ed25519"))
    forged.signature, forged.key_version = attacker.sign(signed_statement(forged))

    report = await partition.verify(records, [forged, *checkpoints[1:]])

    assert report.first_bad_offset == 0
    assert "signature invalid" in (report.reason or "")


async def test_a_restarted_runner_resumes_after_the_last_checkpoint_and_chains_on(
    partition: AttestedPartition,
) -> None:
    await partition.append(3)
    await partition.attest(expected_next_offset=13)
    records, checkpoints = await partition.read()

    report = await partition.verify(records, checkpoints)

    assert [(c.first_offset, c.last_offset) for c in checkpoints][-1] == (10, 12)
    assert checkpoints[-1].previous_root == checkpoints[-2].root
    assert report.ok, report.findings


async def test_after_forgetting_a_patient_a_full_replay_cannot_read_them_and_audit_verifies(
    partition: AttestedPartition, vault: hvac.Client, key_store_mount: str
) -> None:
    forgotten, kept = PATIENTS
    await partition.keyring.forget(forgotten)
    records, checkpoints = await partition.read()
    # A replay from offset 0 by a replica that never saw the key (an empty cache).
    kek = TransitKeyEncryption(vault, partition.keyring.kek_name)
    replay = EnvelopeCipher(PatientKeyring(kek, KvWrappedKeyStore(vault, key_store_mount)))

    readable: dict[str, set[str]] = {forgotten: set(), kept: set()}
    for record in records:
        envelope = _envelope(record)
        try:
            payload = StringValue.FromString(await replay.decrypt(envelope)).value
        except PatientForgottenError:
            payload = "forgotten"  # the marker a projection writes
        readable[envelope.patient_id].add(payload)

    assert readable[forgotten] == {"forgotten"}
    assert all(text.startswith("Jane Q. Doe #") for text in readable[kept])
    assert (await partition.verify(records, checkpoints)).ok


async def test_checkpoints_of_another_topic_attest_nothing_here(
    partition: AttestedPartition,
) -> None:
    records, checkpoints = await partition.read()
    # A mirror holding the very same bytes, presented with the original's genuine checkpoints.
    mirror = f"{partition.topic}.mirror"

    report = await verify_partition(
        records, checkpoints, partition.signer, topic=mirror, partition=0
    )

    assert report.first_bad_offset == 0
    assert f"it attests {partition.topic}/0, not this partition" in (report.reason or "")
