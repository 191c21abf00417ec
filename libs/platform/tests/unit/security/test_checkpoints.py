"""Checkpoints on fakes (no Kafka, no Vault): when they are cut, how they chain, what they catch."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC

import pytest
from clinical_testing.eventlog import make_envelope
from clinical_testing.security import InMemorySigner

from clinical.audit.v1.checkpoint_pb2 import Checkpoint
from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.eventlog.hash_chain import ChainSealer
from clinical_platform.security.chain import VerificationReport
from clinical_platform.security.checkpoints import (
    Checkpointer,
    CheckpointPolicy,
    root_of,
    signed_statement,
)
from clinical_platform.security.errors import KeyServiceUnavailableError
from clinical_platform.security.merkle import leaf_hash, merkle_root
from clinical_platform.security.verification import attested_hash, verify_partition

pytestmark = pytest.mark.unit

TOPIC = "clinical.test.events.v1"


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


class Published:
    def __init__(self) -> None:
        self.checkpoints: list[Checkpoint] = []

    async def publish(self, checkpoint: Checkpoint) -> None:
        self.checkpoints.append(checkpoint)


@dataclass(frozen=True)
class Record:
    offset: int
    value: bytes | None


def _hash(n: int) -> bytes:
    return hashlib.sha256(str(n).encode()).digest()


def _partition(count: int = 10) -> list[Record]:
    """Sealed events of two aggregates, interleaved, at offsets 0..count-1."""
    aggregates = [str(uuid.uuid4()), str(uuid.uuid4())]
    sealer = ChainSealer(lambda _aggregate: b"")
    records = []
    for offset in range(count):
        aggregate = aggregates[offset % 2]
        envelope = make_envelope(aggregate, offset // 2 + 1, f"req-{offset}", f"note {offset}")
        sealer.seal(envelope)
        records.append(Record(offset, envelope.SerializeToString()))
    return records


async def _attest(
    records: list[Record], signer: InMemorySigner, every: int = 4
) -> list[Checkpoint]:
    published = Published()
    checkpointer = Checkpointer(TOPIC, 0, signer, published, CheckpointPolicy(every_events=every))
    for record in records:
        await checkpointer.observe(record.offset, attested_hash(record.value))
    await checkpointer.flush()
    return published.checkpoints


async def _verify(
    records: list[Record], checkpoints: list[Checkpoint], signer: InMemorySigner
) -> VerificationReport:
    return await verify_partition(records, checkpoints, signer, topic=TOPIC, partition=0)


def test_merkle_root_has_the_rfc_6962_shape() -> None:
    a, b, c = (leaf_hash(n, _hash(n)) for n in range(3))
    node = hashlib.sha256(b"\x01" + a + b).digest()

    assert merkle_root([a]) == a
    assert merkle_root([a, b]) == node
    assert merkle_root([a, b, c]) == hashlib.sha256(b"\x01" + node + c).digest()
    assert merkle_root([]) == hashlib.sha256(b"").digest()


async def test_a_checkpoint_is_cut_every_n_events_and_chains_onto_the_previous() -> None:
    published = Published()
    checkpointer = Checkpointer(
        "t", 2, InMemorySigner(), published, CheckpointPolicy(every_events=3)
    )

    for offset in range(7):
        await checkpointer.observe(offset, _hash(offset))

    first, second = published.checkpoints
    assert [(c.first_offset, c.last_offset, c.record_count) for c in published.checkpoints] == [
        (0, 2, 3),
        (3, 5, 3),
    ]
    assert first.previous_root == b""
    assert second.previous_root == first.root
    assert first.root == root_of(first.entries)
    assert (first.topic, first.partition, first.signing_key, first.key_version) == (
        "t",
        2,
        "test-audit",
        1,
    )
    assert checkpointer.pending == 1


async def test_pending_events_are_checkpointed_after_t_seconds() -> None:
    clock, published = Clock(), Published()
    checkpointer = Checkpointer(
        "t",
        0,
        InMemorySigner(),
        published,
        CheckpointPolicy(every_events=100, every_seconds=10),
        clock=clock,
    )
    await checkpointer.observe(0, _hash(0))

    clock.now = 9.9
    assert not checkpointer.due()
    clock.now = 10.0
    assert checkpointer.due()
    await checkpointer.flush()
    assert [c.record_count for c in published.checkpoints] == [1]
    assert not checkpointer.due()


async def test_a_resumed_checkpointer_skips_what_was_attested_and_chains_on() -> None:
    signer, published = InMemorySigner(), Published()
    first = Checkpointer("t", 0, signer, published, CheckpointPolicy(every_events=2))
    for offset in range(2):
        await first.observe(offset, _hash(offset))

    resumed = Checkpointer(
        "t",
        0,
        signer,
        published,
        CheckpointPolicy(every_events=2),
        previous=published.checkpoints[-1],
    )
    for offset in range(4):  # re-reads offsets 0 and 1
        await resumed.observe(offset, _hash(offset))

    assert [c.first_offset for c in published.checkpoints] == [0, 2]
    assert published.checkpoints[1].previous_root == published.checkpoints[0].root


async def test_entries_stay_pending_when_signing_fails() -> None:
    signer, published = InMemorySigner(), Published()
    checkpointer = Checkpointer("t", 0, signer, published, CheckpointPolicy(every_events=2))
    await checkpointer.observe(0, _hash(0))
    signer.available = False

    with pytest.raises(KeyServiceUnavailableError):
        await checkpointer.observe(1, _hash(1))
    signer.available = True
    await checkpointer.flush()

    assert [c.record_count for c in published.checkpoints] == [2]


async def test_untouched_partition_verifies_and_is_attested_through_its_last_offset() -> None:
    signer, records = InMemorySigner(), _partition()

    report = await _verify(records, await _attest(records, signer), signer)

    assert report.ok, report.findings
    assert (report.attested_through, report.records, report.unattested) == (9, 10, 0)


async def test_rewritten_event_with_a_recomputed_hash_is_caught_by_the_checkpoint() -> None:
    signer, records = InMemorySigner(), _partition()
    checkpoints = await _attest(records, signer)
    # The attacker changes event 5 and re-seals it, so its own hash checks out.
    envelope = make_envelope("00000000-0000-0000-0000-000000000000", 1, "x")
    envelope.ParseFromString(records[5].value or b"")
    envelope.payload = b"forged"
    ChainSealer(lambda _a: envelope.prev_hash).seal(envelope)
    records[5] = Record(5, envelope.SerializeToString())

    report = await _verify(records, checkpoints, signer)

    assert report.first_bad_offset == 5
    assert "differs from the record checkpoint [4..7] attests" in (report.reason or "")


async def test_dropped_record_is_named_by_its_attested_offset() -> None:
    signer, records = InMemorySigner(), _partition()
    checkpoints = await _attest(records, signer)
    del records[9]  # the last event of its aggregate: no chain can notice

    report = await _verify(records, checkpoints, signer)

    assert report.first_bad_offset == 9
    assert "missing" in (report.reason or "")


async def test_forged_checkpoint_is_refused_and_named_by_its_first_offset() -> None:
    signer, records = InMemorySigner(), _partition()
    checkpoints = await _attest(records, signer)
    forged = Checkpoint()
    forged.CopyFrom(checkpoints[1])
    forged.signature = InMemorySigner().sign(signed_statement(forged))[0]  # another key

    report = await _verify(records, [checkpoints[0], forged, checkpoints[2]], signer)

    assert report.first_bad_offset == 4
    assert "signature invalid" in (report.reason or "")


async def test_dropped_checkpoint_breaks_the_checkpoint_chain() -> None:
    signer, records = InMemorySigner(), _partition()
    checkpoints = await _attest(records, signer)

    report = await _verify(records, [checkpoints[0], checkpoints[2]], signer)

    assert report.first_bad_offset == 4
    assert "in no valid checkpoint" in (report.reason or "")
    assert any("previous_root" in finding.reason for finding in report.findings)


async def test_records_after_the_last_checkpoint_are_counted_as_unattested() -> None:
    signer, records = InMemorySigner(), _partition()
    checkpoints = await _attest(records[:8], signer)

    report = await _verify(records, checkpoints, signer)

    assert report.ok
    assert (report.attested_through, report.unattested) == (7, 2)


async def test_the_report_says_when_the_last_valid_checkpoint_was_signed() -> None:
    signer, records = InMemorySigner(), _partition()
    checkpoints = await _attest(records, signer)

    report = await _verify(records, checkpoints, signer)
    unattested = await _verify(records, [], signer)

    assert report.attested_at == checkpoints[-1].created_at.ToDatetime(tzinfo=UTC)
    assert unattested.attested_at is None


async def test_a_backlog_is_signed_in_chunks_of_at_most_max_entries_each_chained() -> None:
    published = Published()
    policy = CheckpointPolicy(every_events=10**6, max_entries=4)
    checkpointer = Checkpointer("t", 0, InMemorySigner(), published, policy)
    for offset in range(10):
        await checkpointer.observe(offset, _hash(offset))

    await checkpointer.flush()

    ranges = [(c.first_offset, c.last_offset) for c in published.checkpoints]
    assert ranges == [(0, 3), (4, 7), (8, 9)]
    roots = [c.root for c in published.checkpoints]
    assert [c.previous_root for c in published.checkpoints] == [b"", *roots[:-1]]
    assert checkpointer.pending == 0


async def test_a_genuine_checkpoint_of_another_partition_is_refused() -> None:
    signer, records = InMemorySigner(), _partition()
    checkpoints = await _attest(records, signer)

    report = await verify_partition(records, checkpoints, signer, topic=TOPIC, partition=1)

    assert report.first_bad_offset == 0
    assert f"it attests {TOPIC}/0, not this partition" in (report.reason or "")


async def test_a_record_its_writer_did_not_write_is_named_and_the_next_genuine_one_fits() -> None:
    signer, records = InMemorySigner(), _partition(4)
    # Offset 4: a forgery chained onto offset 2's event (its aggregate's head), appended by
    # someone else; offset 5: the writer's genuine next event of that aggregate.
    head = Envelope.FromString(records[2].value or b"")
    forged, genuine = (make_envelope(head.aggregate_id, 3, request) for request in ("f", "g"))
    for envelope in (forged, genuine):
        ChainSealer(lambda _aggregate: head.hash).seal(envelope)
    records += [Record(4, forged.SerializeToString()), Record(5, genuine.SerializeToString())]
    published = Published()
    checkpointer = Checkpointer(TOPIC, 0, signer, published, CheckpointPolicy(every_events=100))
    for record in records:
        if record.offset == 4:
            checkpointer.pass_over(record.offset)  # what the runner does with foreign records
        else:
            await checkpointer.observe(record.offset, attested_hash(record.value))
    await checkpointer.flush()

    report = await _verify(records, published.checkpoints, signer)

    assert [finding.offset for finding in report.findings] == [4], report.findings
    assert "not its writer's" in (report.reason or "")
