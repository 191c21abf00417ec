"""The local state store of one owned partition, in the tables of eventsourcing's SQLite
process recorder.

It indexes the partition's events by aggregate for fast loads, enforces (aggregate id, version)
uniqueness, remembers each command's outcome by request id, and records the offset of the last
applied record, all in one SQLite transaction (one statement for a commit's or a catch-up
fetch's rows). It is a cache of the topic: delete the file and the writer rebuilds it from Kafka
on start. One thing the topic cannot tell is which records this writer wrote (anyone able to
produce could append there): the store keeps the offsets it produced, for the checkpoint runner.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from eventsourcing.persistence import IntegrityError, StoredEvent
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
    """An envelope as it sits on the topic, at its offset; ``value`` is the record's bytes."""

    offset: int
    envelope: Envelope
    value: bytes


def request_key(aggregate_id: str, request_id: str) -> str:
    """Request ids are unique per aggregate: the same id on two aggregates is two commands."""
    return f"{_REQUEST_PREFIX}{aggregate_id}/{request_id}"


class PartitionStore:
    """SQLite file per partition: events, request outcomes, snapshots and the applied offset."""

    def __init__(self, path: Path, topic: str, partition: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection: the writer uses the store from one thread, one call at a time.
        self._datastore = SQLiteDatastore(
            str(path), originator_id_type="text", pool_size=1, max_overflow=0
        )
        # WAL with synchronous=NORMAL: a crash may lose the last transactions, never corrupt the
        # file, and whatever is lost is re-read from the topic at catch-up (the offset commits
        # with the rows). It saves an fsync per group commit. The pragma must run outside a
        # transaction, so on the pool's only connection directly.
        with self._datastore.get_connection(commit=True) as connection:
            connection.cursor().execute("PRAGMA synchronous=NORMAL")
        self._events = SQLiteProcessRecorder(self._datastore, events_table_name="events")
        self._snapshots = SQLiteAggregateRecorder(self._datastore, events_table_name="snapshots")
        self._events.create_table()
        self._snapshots.create_table()
        self._tracking_name = f"{topic}/{partition}"
        # The hot path (every command's reads, every commit's writes) skips the recorder's
        # layers: plain statements on a connection of its own, the reads in front of a bounded
        # in-memory index kept current by `apply` (this process is the only writer). The
        # recorders above created the tables and still serve loads and snapshots.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
        self._db.execute(_CREATE_OWN_RECORDS)
        self._versions: OrderedDict[str, int] = OrderedDict()
        self._hashes: OrderedDict[str, bytes] = OrderedDict()
        self._outcomes: OrderedDict[str, RecordedOutcome | None] = OrderedDict()

    def close(self) -> None:
        self._db.close()
        self._datastore.close()

    def next_offset(self) -> int:
        """The offset to read from to catch up: one past the last record applied."""
        last = self._events.max_tracking_id(self._tracking_name)
        return 0 if last is None else last + 1

    def current_version(self, aggregate_id: str) -> int:
        """The aggregate's last recorded version; 0 when it has no events."""
        version = self._versions.get(aggregate_id)
        if version is None:
            row = self._db.execute(_MAX_VERSION, (aggregate_id,)).fetchone()
            version = int(row[0] or 0)
            _remember(self._versions, aggregate_id, version)
        return version

    def last_hash(self, aggregate_id: str) -> bytes:
        """The hash of the aggregate's last event (its chain head); empty for a new aggregate."""
        head = self._hashes.get(aggregate_id)
        if head is None:
            row = self._db.execute(_LATEST_STATE, (aggregate_id,)).fetchone()
            head = Envelope.FromString(row[0]).hash if row else b""
            _remember(self._hashes, aggregate_id, head)
        return head

    def outcome_of(self, aggregate_id: str, request_id: str) -> RecordedOutcome | None:
        """The outcome of an earlier command with this request id, if there was one."""
        key = request_key(aggregate_id, request_id)
        if key in self._outcomes:
            return self._outcomes[key]
        row = self._db.execute(_MAX_VERSION, (key,)).fetchone()
        # The row's key names the aggregate and its version is the outcome's (older rows repeat
        # both in a JSON state, which is no longer read). A new request id is asked about twice
        # (by the repository, then by the writer): its absence is remembered too, until `apply`
        # records its outcome or a catch-up clears the index.
        outcome = None if row[0] is None else RecordedOutcome(aggregate_id, int(row[0]))
        _remember(self._outcomes, key, outcome)
        return outcome

    def envelopes(self, aggregate_id: str, after_version: int = 0) -> list[Envelope]:
        """The aggregate's envelopes after a version, in version order."""
        return [
            Envelope.FromString(row.state)
            for row in self._events.select_events(aggregate_id, gt=after_version)
        ]

    def apply(self, records: list[AppliedRecord]) -> None:
        """Store records just committed to the topic, with the last one's offset.

        Raises eventsourcing's IntegrityError if an (aggregate, version) is already present
        (nothing is stored then); `apply_from_log` skips such records instead.
        """
        if not records:
            return
        try:
            self._insert(records, _INSERT_EVENT)
        except sqlite3.IntegrityError as error:
            raise IntegrityError(error) from error
        for record in records:
            envelope = record.envelope
            _remember(self._versions, envelope.aggregate_id, envelope.aggregate_version)
            _remember(self._hashes, envelope.aggregate_id, envelope.hash)
            if envelope.request_id:
                outcome = RecordedOutcome(envelope.aggregate_id, envelope.aggregate_version)
                key = request_key(envelope.aggregate_id, envelope.request_id)
                _remember(self._outcomes, key, outcome)

    def apply_from_log(self, records: list[AppliedRecord]) -> None:
        """Like `apply`, for catch-up: records this store already holds are skipped (written
        right after their commit, say), and the offset advances past them all the same."""
        if not records:
            return
        self._insert(records, _INSERT_EVENT_IF_NEW)
        # Cheaper than indexing a long history entry by entry: the next reads go to SQLite.
        for index in (self._versions, self._hashes, self._outcomes):
            index.clear()

    def _insert(self, records: list[AppliedRecord], statement: str) -> None:
        """The records' rows and the last one's offset, in one SQLite transaction."""
        rows = [row for record in records for row in _rows(record)]
        self._db.execute("BEGIN")
        try:
            self._db.executemany(statement, rows)
            self._db.execute(_ADVANCE_OFFSET, (self._tracking_name, records[-1].offset))
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def record_own(self, offsets: list[int]) -> None:
        """Remember offsets this writer produced, before their transaction commits (those of an
        aborted one are never read, so remembering them too does no harm)."""
        runs: list[list[int]] = []
        for offset in sorted(offsets):
            if runs and runs[-1][1] + 1 == offset:
                runs[-1][1] = offset
            else:
                runs.append([offset, offset])
        self._db.execute("BEGIN")
        try:
            self._db.executemany(_INSERT_OWN_RUN, runs)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def wrote(self, offset: int) -> bool:
        """Whether this writer produced the record at ``offset`` (`record_own`)."""
        row = self._db.execute(_OWN_RUN_AT, (offset,)).fetchone()
        return row is not None and row[0] >= offset

    def save_snapshot(self, aggregate_id: str, version: int, state: bytes) -> None:
        """Keep a snapshot of the aggregate at a version (a cache: losing it costs a replay)."""
        snapshot = StoredEvent(aggregate_id, version, "Snapshot", state)
        with contextlib.suppress(IntegrityError):  # the same snapshot was taken already
            self._snapshots.insert_events([snapshot])

    def latest_snapshot(self, aggregate_id: str) -> tuple[int, bytes] | None:
        rows = self._snapshots.select_events(aggregate_id, desc=True, limit=1)
        return (rows[0].originator_version, rows[0].state) if rows else None


_INDEX_SIZE = 100_000
# SQLite's page cache for the hot connection: a catch-up fetch writes tens of thousands of rows
# under random keys in one transaction; with the 2 MiB default, their pages spill and are read
# back again and again.
_CACHE_KIB = 32 * 1024
_MAX_VERSION = "SELECT MAX(originator_version) FROM events WHERE originator_id = ?"
_LATEST_STATE = (
    "SELECT state FROM events WHERE originator_id = ? ORDER BY originator_version DESC LIMIT 1"
)
# The tables eventsourcing's recorders created: events (originator_id, originator_version,
# topic, state) and single-row tracking (application_name, notification_id).
_INSERT_EVENT = "INSERT INTO events VALUES (?, ?, ?, ?)"
_INSERT_EVENT_IF_NEW = "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?)"
_ADVANCE_OFFSET = (
    "INSERT INTO tracking VALUES (?, ?) ON CONFLICT (application_name) DO UPDATE "
    "SET notification_id = excluded.notification_id "
    "WHERE tracking.notification_id < excluded.notification_id"
)

# The offsets this writer produced, as runs of consecutive offsets (one per record batch).
_CREATE_OWN_RECORDS = (
    "CREATE TABLE IF NOT EXISTS own_records "
    "(first_offset INTEGER PRIMARY KEY, last_offset INTEGER NOT NULL)"
)
_INSERT_OWN_RUN = "INSERT OR REPLACE INTO own_records VALUES (?, ?)"
_OWN_RUN_AT = (
    "SELECT last_offset FROM own_records WHERE first_offset <= ? ORDER BY first_offset DESC LIMIT 1"
)

T = TypeVar("T")


def _remember(index: OrderedDict[str, T], key: str, value: T) -> None:
    index[key] = value
    index.move_to_end(key)
    if len(index) > _INDEX_SIZE:
        index.popitem(last=False)


def _rows(record: AppliedRecord) -> list[tuple[str, int, str, bytes]]:
    """The event itself (the record's bytes), plus its request's outcome at this version when it
    has a request id.

    The outcome row is versioned like the event, so a command that records several events
    leaves one row per event and `outcome_of` reads the latest; applying the same event twice
    is the only way to collide. Its key and version are the whole outcome: its state is empty.
    """
    envelope = record.envelope
    aggregate_id, version = envelope.aggregate_id, envelope.aggregate_version
    rows = [(aggregate_id, version, envelope.event_type, record.value)]
    if envelope.request_id:
        rows.append((request_key(aggregate_id, envelope.request_id), version, _REQUEST_TOPIC, b""))
    return rows
