"""Consumer lag per group and partition, in records and in seconds, read at scrape time.

A watcher samples its consumer every second: the partition's end (the last stable offset, as a
``read_committed`` consumer sees it) and the consumer's position. Lag in records is their
difference. Lag in seconds is how long the partition has been behind: the time since it was
last seen caught up or last had a record applied, whichever is later, and 0 while caught up.
So a stuck consumer's lag keeps growing even though no record moves. Projections' groups are
named ``projection.<name>``, which is how the projection-lag alert picks them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import TopicPartition
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from clinical_platform.observability.metrics import REGISTRY

SAMPLE_EVERY_S = 1.0


class LagSource(Protocol):
    """What the watcher reads of a consumer (an AIOKafkaConsumer)."""

    def assignment(self) -> set[TopicPartition]: ...
    def last_stable_offset(self, partition: TopicPartition) -> int | None: ...
    def highwater(self, partition: TopicPartition) -> int | None: ...
    async def position(self, partition: TopicPartition) -> int: ...


class TimedRecord(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...


@dataclass
class _Partition:
    behind: int = 0
    caught_up_at: float = 0.0  # wall clock, s
    applied_at: float = 0.0  # when the last record was applied, wall clock, s

    def lag_seconds(self, now: float) -> float:
        if self.behind <= 0:
            return 0.0
        return max(0.0, now - max(self.caught_up_at, self.applied_at))


class ConsumerProgress:
    """The lag of one consumer group's assigned partitions in this process."""

    def __init__(self, group: str, clock: Callable[[], float] = time.time) -> None:
        self.group = group
        self._clock = clock
        self._partitions: dict[tuple[str, int], _Partition] = {}

    def applied(self, records: Iterable[TimedRecord]) -> None:
        """Records were handled: their partitions made progress now."""
        now = self._clock()
        for record in records:
            self._partitions.setdefault(
                (record.topic, record.partition), _Partition()
            ).applied_at = now

    async def sample(self, consumer: LagSource) -> None:
        """Read each assigned partition's end and position; forget revoked partitions."""
        now = self._clock()
        assigned = consumer.assignment()
        for tp in assigned:
            end = consumer.last_stable_offset(tp) or consumer.highwater(tp)
            if end is None:
                continue
            try:
                position = await consumer.position(tp)
            except Exception:  # noqa: S112  # revoked meanwhile: sampled again next time
                continue
            state = self._partitions.setdefault((tp.topic, tp.partition), _Partition())
            state.behind = max(0, end - position)
            if state.behind == 0:
                state.caught_up_at = now
        kept = {(tp.topic, tp.partition) for tp in assigned}
        for key in list(self._partitions):
            if key not in kept:
                del self._partitions[key]

    def rows(self, now: float) -> Iterator[tuple[str, str, int, float]]:
        """(topic, partition, records behind, seconds behind) per partition."""
        for (topic, partition), state in list(self._partitions.items()):
            yield topic, str(partition), state.behind, state.lag_seconds(now)


class _LagCollector(Collector):
    def __init__(self) -> None:
        self.watched: dict[int, ConsumerProgress] = {}

    def collect(self) -> Iterator[Metric]:
        labels = ["consumer_group", "topic", "partition"]
        records = GaugeMetricFamily(
            "clinical_consumer_lag_records",
            "Records of the partition the group has not consumed (last stable offset - position).",
            labels=labels,
        )
        seconds = GaugeMetricFamily(
            "clinical_consumer_lag_seconds",
            "How long the group has been behind on the partition (0 while caught up).",
            labels=labels,
        )
        now = time.time()
        for progress in list(self.watched.values()):
            for topic, partition, behind, behind_s in progress.rows(now):
                records.add_metric([progress.group, topic, partition], behind)
                seconds.add_metric([progress.group, topic, partition], behind_s)
        yield records
        yield seconds


_COLLECTOR = _LagCollector()
REGISTRY.register(_COLLECTOR)


class LagWatcher:
    """Samples one consumer while it runs; `stop()` removes its series."""

    def __init__(self, consumer: LagSource, group: str) -> None:
        self.progress = ConsumerProgress(group)
        self._consumer = consumer
        _COLLECTOR.watched[id(self)] = self.progress
        self._task = asyncio.create_task(self._run(), name=f"lag {group}")

    def applied(self, records: Sequence[TimedRecord]) -> None:
        self.progress.applied(records)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_EVERY_S)
            with contextlib.suppress(Exception):
                await self.progress.sample(self._consumer)

    async def stop(self) -> None:
        _COLLECTOR.watched.pop(id(self), None)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def watch_lag(consumer: LagSource, group: str) -> LagWatcher:
    """Start sampling ``consumer`` (of consumer group ``group``) for the lag metrics."""
    return LagWatcher(consumer, group)
