"""The per-aggregate hash chain: sealing, canonical bytes, and what a chain alone can see."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

import pytest
from clinical_testing.eventlog import make_envelope
from google.protobuf.wrappers_pb2 import StringValue

from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.eventlog.hash_chain import ChainSealer, canonical_bytes, event_hash, seal
from clinical_platform.security.chain import (
    record_canonical_bytes,
    record_hash,
    verify_chain,
)

pytestmark = pytest.mark.unit

AGGREGATES = [str(uuid.uuid4()) for _ in range(3)]


def sealed_history(count: int = 10) -> list[Envelope]:
    """`count` events over three aggregates, interleaved as on a partition, each chain sealed."""
    versions: dict[str, int] = {}
    sealer = ChainSealer(lambda _aggregate: b"")
    envelopes = []
    for index in range(count):
        aggregate = AGGREGATES[index % len(AGGREGATES)]
        versions[aggregate] = versions.get(aggregate, 0) + 1
        envelope = make_envelope(aggregate, versions[aggregate], f"req-{index}", f"note {index}")
        envelope.recorded_at.FromDatetime(datetime.now(UTC))
        sealer.seal(envelope)
        envelopes.append(envelope)
    return envelopes


def test_seal_sets_prev_hash_and_a_sha256_over_everything_but_the_hash() -> None:
    first, second = make_envelope(AGGREGATES[0], 1, "a"), make_envelope(AGGREGATES[0], 2, "b")

    head = seal(first, b"")
    seal(second, head)

    assert first.prev_hash == b""
    assert second.prev_hash == first.hash == head
    assert len(head) == 32
    assert head == hashlib.sha256(canonical_bytes(first)).digest()


def test_stored_bytes_minus_the_hash_field_are_the_canonical_bytes() -> None:
    for envelope in sealed_history():
        value = envelope.SerializeToString()

        assert record_canonical_bytes(value) == canonical_bytes(envelope)
        assert record_hash(value) == envelope.hash == event_hash(envelope)


def test_record_hash_covers_fields_the_verifiers_schema_does_not_know() -> None:
    envelope = sealed_history(1)[0]
    # Field 99, length-delimited "x": a newer writer's field, unknown to this schema.
    newer = envelope.SerializeToString() + b"\x9a\x06\x01x"
    changed = envelope.SerializeToString() + b"\x9a\x06\x01y"

    assert record_hash(newer) != record_hash(changed)


def test_ciphertext_is_covered_by_the_hash() -> None:
    envelope = sealed_history(1)[0]
    envelope.payload = StringValue(value="changed").SerializeToString()

    assert event_hash(envelope) != envelope.hash


def test_sealer_chains_events_of_one_aggregate_within_a_batch_onto_the_stored_head() -> None:
    stored_head = hashlib.sha256(b"the aggregate's last stored event").digest()
    sealer = ChainSealer(lambda aggregate: stored_head if aggregate == AGGREGATES[0] else b"")
    third, fourth = make_envelope(AGGREGATES[0], 3, "r"), make_envelope(AGGREGATES[0], 4, "r")
    other = make_envelope(AGGREGATES[1], 1, "s")

    for envelope in (third, other, fourth):
        sealer.seal(envelope)

    assert third.prev_hash == stored_head
    assert fourth.prev_hash == third.hash
    assert other.prev_hash == b""


def test_untouched_history_verifies() -> None:
    report = verify_chain(sealed_history())

    assert report.ok
    assert report.first_bad_offset is None


def test_flipped_byte_is_found_at_its_event() -> None:
    history = sealed_history()
    history[4].payload = bytes([history[4].payload[0] ^ 0x01]) + history[4].payload[1:]

    report = verify_chain(history)

    assert report.first_bad_offset == 4
    assert "hash mismatch" in (report.reason or "")


def test_dropped_event_is_found_at_the_next_event_of_its_aggregate() -> None:
    history = sealed_history()
    del history[4]  # aggregate 1, version 2; its version 3 was at index 7, now 6

    report = verify_chain(history)

    assert report.first_bad_offset == 6
    assert "dropped" in (report.reason or "")


def test_reordered_events_of_an_aggregate_are_found_where_the_order_breaks() -> None:
    history = sealed_history()
    history[1], history[4] = history[4], history[1]  # aggregate 1: version 2 before version 1

    report = verify_chain(history)

    assert report.first_bad_offset == 1


def test_inserted_event_that_does_not_chain_is_found_where_it_was_inserted() -> None:
    history = sealed_history()
    forged = make_envelope(AGGREGATES[2], 3, "forged", "forged note")
    seal(forged, b"\x00" * 32)
    history.insert(6, forged)

    report = verify_chain(history)

    assert report.first_bad_offset == 6
    assert "inserted or replaced" in (report.reason or "")


def test_unsealed_events_are_reported() -> None:
    report = verify_chain([make_envelope(AGGREGATES[0], 1, "a")])

    assert report.first_bad_offset == 0
    assert "not sealed" in (report.reason or "")


def test_malformed_record_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="truncated"):
        record_canonical_bytes(b"\x0a\x05ab")
