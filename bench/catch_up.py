"""Rebuilding a writer's local store from the topic: what a replica with a lost disk waits for.

The appends of the append phase leave a few thousand events; a rebuild of that few mostly
measures start-up's fixed cost. So before the rebuild, `seed_history` adds a long history of
its own to the same topic: counter events written in the writers' format (envelope, CloudEvents
headers, hash chain, one transaction per thousand events), on aggregates of their own.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from uuid import UUID, uuid4

from google.protobuf.empty_pb2 import Empty

from bench.topics import offsets_used
from clinical.events.v1.envelope_pb2 import Envelope
from clinical.events.v1.provenance_pb2 import PURPOSE_OF_USE_TREAT
from clinical_platform.eventlog.envelope import cloudevents_headers
from clinical_platform.eventlog.hash_chain import seal
from clinical_platform.eventlog.partitioning import partition_for
from clinical_platform.eventlog.store import EventStore, EventStoreConfig
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.eventlog.writer import WriterConfig, transactional_producer

SEEDED_EVENTS = 100_000
SEEDED_EVENTS_QUICK = 5_000
_EVENTS_PER_AGGREGATE = 10
_EVENTS_PER_TRANSACTION = 1_000


@dataclass(frozen=True)
class CatchUpRun:
    events: int
    """Events the rebuilt store holds: the append phase's and the seeded history."""
    empty_start_s: float
    """`EventStore.start()` with an empty state dir: fence, then read every event back."""
    up_to_date_start_s: float
    """The same with the state dir the appends left: fencing and opening alone, nothing to read."""
    appended_events: int
    """Events of the append phase alone (the seeded history left out)."""
    offsets: int
    """Offsets the appends took: one per event and one per transaction's commit marker."""

    @property
    def events_per_s(self) -> float:
        return self.events / self.empty_start_s

    @property
    def events_per_commit(self) -> float:
        """How well group commit batched: each writer transaction leaves one marker."""
        return self.appended_events / max(1, self.offsets - self.appended_events)


async def measure_catch_up(
    config: EventStoreConfig, counter_ids: list[UUID], *, seeded_events: int
) -> CatchUpRun:
    """Start stores on the appended topic (whose writer has stopped) and time `start()`."""
    up_to_date_start_s, appended = await _timed_start(config, counter_ids)
    topic = events_topic(config.service)
    offsets = await offsets_used(config.kafka.bootstrap_servers, topic, config.partitions)
    seeded = await seed_history(config, seeded_events)
    with TemporaryDirectory(prefix="bench-rebuilt-") as empty:
        empty_start_s, events = await _timed_start(
            replace(config, state_dir=Path(empty)), counter_ids + seeded
        )
    return CatchUpRun(events, empty_start_s, up_to_date_start_s, appended, offsets)


async def seed_history(config: EventStoreConfig, events: int) -> list[UUID]:
    """Write `events` counter increments on new counters; return the counters' ids."""
    counters = [uuid4() for _ in range(max(1, events // _EVENTS_PER_AGGREGATE))]
    by_partition: dict[int, list[UUID]] = {}
    for counter in counters:
        by_partition.setdefault(partition_for(str(counter), config.partitions), []).append(counter)
    await asyncio.gather(
        *(_seed_partition(config, p, ids) for p, ids in sorted(by_partition.items()))
    )
    return counters


async def _seed_partition(config: EventStoreConfig, partition: int, counters: list[UUID]) -> None:
    topic = events_topic(config.service)
    # The writers' producer, under a transactional id of its own (it must fence no writer).
    writer = WriterConfig(config.kafka, topic, partition, f"{topic}.p{partition}.seed")
    producer = transactional_producer(writer)
    await producer.start()
    try:
        envelopes = _history(counters)
        for start in range(0, len(envelopes), _EVENTS_PER_TRANSACTION):
            async with producer.transaction():
                for envelope in envelopes[start : start + _EVENTS_PER_TRANSACTION]:
                    await producer.send(
                        topic,
                        value=envelope.SerializeToString(),
                        key=envelope.aggregate_id.encode(),
                        partition=partition,
                        headers=cloudevents_headers(envelope),
                    )
    finally:
        await producer.stop()


def _history(counters: list[UUID]) -> list[Envelope]:
    """Each counter's increments, chained, in version order; counters interleaved."""
    now = datetime.now(UTC)
    heads = dict.fromkeys(counters, b"")
    envelopes = []
    for version in range(1, _EVENTS_PER_AGGREGATE + 1):
        for counter in counters:
            envelope = _increment(counter, version, now)
            heads[counter] = seal(envelope, heads[counter])
            envelopes.append(envelope)
    return envelopes


def _increment(counter: UUID, version: int, at: datetime) -> Envelope:
    request_id = str(uuid4())
    envelope = Envelope(
        event_id=str(uuid4()),
        event_type="CounterIncremented",
        schema_version=1,
        source="//clinical/bench",
        aggregate_type="Counter",
        aggregate_id=str(counter),
        aggregate_version=version,
        purpose_of_use=PURPOSE_OF_USE_TREAT,
        correlation_id=request_id,
        causation_id=request_id,
        request_id=request_id,
        payload_type="google.protobuf.Empty",
        payload=Empty().SerializeToString(),
    )
    envelope.actor.subject = "bench-clinician"
    envelope.actor.roles.append("clinician")
    envelope.occurred_at.FromDatetime(at)
    envelope.recorded_at.FromDatetime(at)
    return envelope


async def _timed_start(config: EventStoreConfig, counter_ids: list[UUID]) -> tuple[float, int]:
    """Seconds `start()` took, and the events the started store holds for the counters."""
    store = EventStore(config)
    started = time.perf_counter()
    await store.start()
    elapsed = time.perf_counter() - started
    try:
        # Versions are gapless from 1, so a counter's version is its number of events.
        return elapsed, sum(store.current_version(str(counter)) for counter in counter_ids)
    finally:
        await store.stop()
