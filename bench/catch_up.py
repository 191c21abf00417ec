"""Rebuilding a writer's local store from the topic: what a replica with a lost disk waits for."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from tempfile import TemporaryDirectory
from uuid import UUID

from bench.topics import offsets_used
from clinical_platform.eventlog.store import EventStore, EventStoreConfig
from clinical_platform.eventlog.topics import events_topic


@dataclass(frozen=True)
class CatchUpRun:
    events: int
    empty_start_s: float
    """`EventStore.start()` with an empty state dir: fence, then read every event back."""
    up_to_date_start_s: float
    """The same with the state dir the appends left: fencing and opening alone, nothing to read."""
    offsets: int
    """Offsets the appends took: one per event and one per transaction's commit marker."""

    @property
    def events_per_s(self) -> float:
        return self.events / self.empty_start_s

    @property
    def events_per_commit(self) -> float:
        """How well group commit batched: each writer transaction leaves one marker."""
        return self.events / max(1, self.offsets - self.events)


async def measure_catch_up(config: EventStoreConfig, counter_ids: list[UUID]) -> CatchUpRun:
    """Start stores on the appended topic (whose writer has stopped) and time `start()`."""
    up_to_date_start_s, _ = await _timed_start(config, [])
    with TemporaryDirectory(prefix="bench-rebuilt-") as empty:
        empty_start_s, events = await _timed_start(
            replace(config, state_dir=Path(empty)), counter_ids
        )
    topic = events_topic(config.service)
    offsets = await offsets_used(config.kafka.bootstrap_servers, topic, config.partitions)
    return CatchUpRun(events, empty_start_s, up_to_date_start_s, offsets)


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
