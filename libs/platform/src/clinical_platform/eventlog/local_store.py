"""The local state store of one owned partition, on eventsourcing's SQLite process recorder.

It indexes the partition's events by aggregate for fast loads, enforces (aggregate id, version)
uniqueness, remembers each command's outcome by request id, and records the offset of the last
applied record, all in one SQLite transaction. It is a cache of the topic: delete the file and
the writer rebuilds it from Kafka on start.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking
from eventsourcing.sqlite import (
    SQLiteAggregateRecorder,
    SQLiteDatastore,
    SQLiteProcessRecorder,
)

from clinical.events.v1.envelope_pb2 import Envelope

# Request outcomes share the events table (so they commit atomically with the events they
# describe), under originator ids that cannot collide with an aggregate's UUID.
_REQUEST_PREFIX = "request:"
_REQUEST_TOPIC = "RequestOutcome"


@dataclass(frozen=True)
class RecordedOutcome:
    """What a command with a given request id did: the aggregate it wrote and its new version."""

    aggregate_id: str
    version: int


@dataclass(frozen=True)
class AppliedRecord:
    """An envelope as it sits on the topic, at its offset."""

    offset: int
    envelope: Envelope


def request_key(aggregate_id: str, request_id: str) -> str:
    """Request ids are unique per aggregate: the same id on two aggregates is two commands."""
    return f"{_REQUEST_PREFIX}{aggregate_id}/{request_id}"


class PartitionStore:
    """SQLite file per partition: events, request outcomes, snapshots and the applied offset."""

    def __init__(self, path: Path, topic: str, partition: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._datastore = SQLiteDatastore(str(path), originator_id_type="text")
        self._events = SQLiteProcessRecorder(self._datastore, events_table_name="events")
        self._snapshots = SQLiteAggregateRecorder(self._datastore, events_table_name="snapshots")
        self._events.create_table()
        self._snapshots.create_table()
        self._tracking_name = f"{topic}/{partition}"

    def close(self) -> None:
        self._datastore.close()

    def next_offset(self) -> int:
        """The offset to read from to catch up: one past the last record applied."""
        last = self._events.max_tracking_id(self._tracking_name)
        return 0 if last is None else last + 1

    def current_version(self, aggregate_id: str) -> int:
        """The aggregate's last recorded version; 0 when it has no events."""
        last = self._events.select_events(aggregate_id, desc=True, limit=1)
        return last[0].originator_version if last else 0

    def outcome_of(self, aggregate_id: str, request_id: str) -> RecordedOutcome | None:
        """The outcome of an earlier command with this request id, if there was one."""
        rows = self._events.select_events(request_key(aggregate_id, request_id), desc=True, limit=1)
        if not rows:
            return None
        recorded = json.loads(rows[0].state)
        return RecordedOutcome(recorded["aggregate_id"], int(recorded["version"]))

    def envelopes(self, aggregate_id: str, after_version: int = 0) -> list[Envelope]:
        """The aggregate's envelopes after a version, in version order."""
        return [
            Envelope.FromString(row.state)
            for row in self._events.select_events(aggregate_id, gt=after_version)
        ]

    def apply(self, records: list[AppliedRecord]) -> None:
        """Store records read from (or just committed to) the topic, with their last offset.

        Raises eventsourcing's IntegrityError if an (aggregate, version) is already present;
        `apply_from_log` skips such records instead.
        """
        if not records:
            return
        stored = [row for record in records for row in _rows(record.envelope)]
        tracking = Tracking(self._tracking_name, records[-1].offset)
        self._events.insert_events(stored, tracking=tracking)

    def apply_from_log(self, records: list[AppliedRecord]) -> None:
        """Like `apply`, for catch-up: records this store already holds are skipped."""
        try:
            self.apply(records)
        except IntegrityError:
            for record in records:
                try:
                    self.apply([record])
                except IntegrityError:
                    # Already applied (for instance written right after its commit); still
                    # advance the offset so catch-up never re-reads it.
                    self._events.insert_tracking(Tracking(self._tracking_name, record.offset))

    def save_snapshot(self, aggregate_id: str, version: int, state: bytes) -> None:
        """Keep a snapshot of the aggregate at a version (a cache: losing it costs a replay)."""
        snapshot = StoredEvent(aggregate_id, version, "Snapshot", state)
        with contextlib.suppress(IntegrityError):  # the same snapshot was taken already
            self._snapshots.insert_events([snapshot])

    def latest_snapshot(self, aggregate_id: str) -> tuple[int, bytes] | None:
        rows = self._snapshots.select_events(aggregate_id, desc=True, limit=1)
        return (rows[0].originator_version, rows[0].state) if rows else None


def _rows(envelope: Envelope) -> list[StoredEvent]:
    """The event itself, plus its request's outcome at this version when it has a request id.

    The outcome row is versioned like the event, so a command that records several events
    leaves one row per event and `outcome_of` reads the latest; applying the same event twice
    is the only way to collide.
    """
    rows = [
        StoredEvent(
            originator_id=envelope.aggregate_id,
            originator_version=envelope.aggregate_version,
            topic=envelope.event_type,
            state=envelope.SerializeToString(),
        )
    ]
    if envelope.request_id:
        outcome = RecordedOutcome(envelope.aggregate_id, envelope.aggregate_version)
        rows.append(
            StoredEvent(
                originator_id=request_key(envelope.aggregate_id, envelope.request_id),
                originator_version=envelope.aggregate_version,
                topic=_REQUEST_TOPIC,
                state=json.dumps(vars(outcome)).encode(),
            )
        )
    return rows
