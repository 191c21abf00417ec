"""Consumer lag: records behind the last stable offset, and for how long the group has been."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from aiokafka import TopicPartition
from clinical_testing.observability import Record

from clinical_platform.observability.consumer_lag import ConsumerProgress, watch_lag
from clinical_platform.observability.metrics import REGISTRY

pytestmark = pytest.mark.unit

TOPIC = "clinical.orders.events.v1"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


@dataclass
class Consumer:
    ends: dict[TopicPartition, int]
    positions: dict[TopicPartition, int] = field(default_factory=dict)

    def assignment(self) -> set[TopicPartition]:
        return set(self.ends)

    def last_stable_offset(self, partition: TopicPartition) -> int | None:
        return self.ends[partition]

    def highwater(self, partition: TopicPartition) -> int | None:
        return self.ends[partition]

    async def position(self, partition: TopicPartition) -> int:
        return self.positions[partition]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_lag_counts_records_behind_and_seconds_since_last_caught_up_or_applied() -> None:
    clock = Clock()
    progress = ConsumerProgress("projection.orders", clock=clock)
    consumer = Consumer(ends={P0: 10, P1: 5}, positions={P0: 10, P1: 5})
    await progress.sample(consumer)  # both caught up at t=1000

    clock.now = 1030.0
    consumer.ends[P0] = 16
    consumer.positions[P0] = 12
    await progress.sample(consumer)
    clock.now = 1060.0
    behind_since_caught_up = {(t, p): (n, s) for t, p, n, s in progress.rows(clock.now)}
    progress.applied([Record(TOPIC, 0, 11, 0)])
    clock.now = 1070.0
    behind_since_applied = {(t, p): (n, s) for t, p, n, s in progress.rows(clock.now)}

    assert behind_since_caught_up == {(TOPIC, "0"): (4, 60.0), (TOPIC, "1"): (0, 0.0)}
    assert behind_since_applied[(TOPIC, "0")] == (4, 10.0)


async def test_revoked_partitions_leave_the_metrics() -> None:
    progress = ConsumerProgress("projection.orders")
    consumer = Consumer(ends={P0: 3, P1: 3}, positions={P0: 1, P1: 3})
    await progress.sample(consumer)
    del consumer.ends[P1]

    await progress.sample(consumer)

    assert [(p, n) for _, p, n, _ in progress.rows(0)] == [("0", 2)]


async def test_a_watched_consumer_is_exported_until_it_stops() -> None:
    consumer = Consumer(ends={P0: 9}, positions={P0: 2})
    labels = {"consumer_group": "projection.lagging", "topic": TOPIC, "partition": "0"}
    watcher = watch_lag(consumer, "projection.lagging")
    await watcher.progress.sample(consumer)

    exported = REGISTRY.get_sample_value("clinical_consumer_lag_records", labels)
    await watcher.stop()

    assert exported == 7
    assert REGISTRY.get_sample_value("clinical_consumer_lag_records", labels) is None
