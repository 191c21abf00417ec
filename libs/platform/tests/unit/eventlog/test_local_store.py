"""The partition's local store: what a commit or a catch-up leaves in it, and what it answers."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from clinical_testing.eventlog import make_envelope
from eventsourcing.persistence import IntegrityError

from clinical_platform.eventlog.hash_chain import seal
from clinical_platform.eventlog.local_store import AppliedRecord, PartitionStore, RecordedOutcome

pytestmark = pytest.mark.unit

TOPIC = "clinical.notes.events.v1"


def _record(offset: int, aggregate_id: str, version: int, request_id: str) -> AppliedRecord:
    envelope = make_envelope(aggregate_id, version, request_id)
    seal(envelope, b"")
    return AppliedRecord(offset, envelope, envelope.SerializeToString())


def _store(path: Path) -> PartitionStore:
    return PartitionStore(path / "p0.sqlite", TOPIC, 0)


def test_a_committed_batch_answers_versions_outcomes_heads_and_the_next_offset(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    note = str(uuid.uuid4())
    records = [_record(7, note, 1, "req-1"), _record(8, note, 2, "req-2")]

    store.apply(records)

    assert store.current_version(note) == 2
    assert store.outcome_of(note, "req-1") == RecordedOutcome(note, 1)
    assert store.outcome_of(note, "req-3") is None
    assert store.outcome_of(str(uuid.uuid4()), "req-1") is None, "request ids are per aggregate"
    assert store.last_hash(note) == records[-1].envelope.hash
    assert store.envelopes(note) == [r.envelope for r in records]
    assert store.next_offset() == 9


def test_a_reopened_store_answers_from_its_file(tmp_path: Path) -> None:
    note = str(uuid.uuid4())
    first = _store(tmp_path)
    records = [_record(0, note, 1, "req-1"), _record(1, note, 2, "req-2")]
    first.apply(records)
    first.close()

    reopened = _store(tmp_path)

    assert reopened.current_version(note) == 2
    assert reopened.outcome_of(note, "req-2") == RecordedOutcome(note, 2)
    assert reopened.last_hash(note) == records[-1].envelope.hash
    assert reopened.next_offset() == 2


def test_applying_a_version_already_held_stores_nothing_of_the_batch(tmp_path: Path) -> None:
    store = _store(tmp_path)
    note, other = str(uuid.uuid4()), str(uuid.uuid4())
    store.apply([_record(0, note, 1, "req-1")])

    with pytest.raises(IntegrityError):
        store.apply([_record(1, other, 1, "req-a"), _record(2, note, 1, "req-again")])

    assert store.current_version(other) == 0
    assert store.outcome_of(note, "req-again") is None
    assert store.next_offset() == 1


def test_catch_up_skips_records_already_held_and_still_advances_the_offset(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    note = str(uuid.uuid4())
    held = _record(0, note, 1, "req-1")
    store.apply([held])
    known = store.current_version(note)  # the in-memory index holds version 1 now

    store.apply_from_log([held, _record(1, note, 2, "req-2"), _record(2, note, 3, "req-3")])

    assert (known, store.current_version(note)) == (1, 3)
    assert store.outcome_of(note, "req-3") == RecordedOutcome(note, 3)
    assert [e.aggregate_version for e in store.envelopes(note)] == [1, 2, 3]
    assert store.next_offset() == 3


@pytest.mark.parametrize("record", ["apply", "apply_from_log"])
def test_a_request_id_asked_about_before_it_is_recorded_has_its_outcome_after(
    tmp_path: Path, record: str
) -> None:
    store = _store(tmp_path)
    note = str(uuid.uuid4())
    before = store.outcome_of(note, "req-1")

    getattr(store, record)([_record(0, note, 1, "req-1")])

    assert before is None
    assert store.outcome_of(note, "req-1") == RecordedOutcome(note, 1)
