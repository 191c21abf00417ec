"""The commit-order merge against a fake partition-fetch source and fake clocks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from clinical_platform.consumers import CommitOrderMerge

pytestmark = pytest.mark.unit
ORDERS = TopicPartition("orders", 0)
RESULTS = TopicPartition("results", 0)
NOW_MS = 1_000_000


def record(tp: TopicPartition, offset: int, timestamp: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=tp.topic, partition=tp.partition, offset=offset, timestamp=timestamp,
        timestamp_type=0, key=None, value=f"{tp.topic}-{offset}".encode(), checksum=None,
        serialized_key_size=0, serialized_value_size=0, headers=[],
    )  # fmt: skip


@dataclass
class _Partition:
    position: int = 0
    end: int | None = None
    fetched_ms: int = 0


@dataclass
class FakeFetches:
    """Partitions whose next fetch responses the test scripts."""

    partitions: dict[TopicPartition, _Partition] = field(
        default_factory=lambda: {ORDERS: _Partition(), RESULTS: _Partition()}
    )
    next_batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = field(
        default_factory=dict
    )
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)
    waits_ms: list[int] = field(default_factory=list)

    def respond(
        self, tp: TopicPartition, at_ms: int, *records: ConsumerRecord[bytes, bytes], end: int
    ) -> None:
        """The next fetch answers for ``tp`` at ``at_ms`` with these records and this end."""
        partition = self.partitions[tp]
        partition.fetched_ms, partition.end = at_ms, end
        partition.position += len(records)
        self.next_batch[tp] = list(records)

    def assignment(self) -> set[TopicPartition]:
        return set(self.partitions)

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        self.waits_ms.append(timeout_ms)
        batch, self.next_batch = self.next_batch, {}
        return batch

    def last_poll_timestamp(self, partition: TopicPartition) -> int:
        return self.partitions[partition].fetched_ms

    def highwater(self, partition: TopicPartition) -> int | None:
        return self.partitions[partition].end

    async def position(self, partition: TopicPartition) -> int:
        return self.partitions[partition].position

    async def commit(
        self, offsets: Mapping[TopicPartition, OffsetAndMetadata] | None = None
    ) -> None:
        self.commits.append({tp: o.offset for tp, o in (offsets or {}).items()})


@dataclass
class Clocks:
    monotonic_s: float = 100.0

    def monotonic(self) -> float:
        return self.monotonic_s


class Handled(list[str]):
    async def __call__(self, record: ConsumerRecord[bytes, bytes]) -> None:
        self.append((record.value or b"").decode())


def merge(source: FakeFetches, clocks: Clocks, **options: Any) -> CommitOrderMerge:
    return CommitOrderMerge(source, monotonic=clocks.monotonic, **options)


async def test_a_record_waits_until_the_other_partition_is_read_to_its_end() -> None:
    source, clocks, handled = FakeFetches(), Clocks(), Handled()
    consumer = merge(source, clocks)
    source.respond(RESULTS, NOW_MS, record(RESULTS, 0, NOW_MS - 500), end=1)
    source.partitions[ORDERS] = _Partition(position=0, end=1, fetched_ms=NOW_MS)

    await consumer.step(handled)  # orders has a record below its end not yet read
    assert handled == []

    source.respond(ORDERS, NOW_MS + 10, record(ORDERS, 0, NOW_MS - 600), end=1)
    await consumer.step(handled)

    assert handled == ["orders-0", "results-0"]


async def test_an_end_reported_before_the_records_fetch_does_not_count() -> None:
    source, clocks, handled = FakeFetches(), Clocks(), Handled()
    consumer = merge(source, clocks)
    source.partitions[ORDERS] = _Partition(position=0, end=0, fetched_ms=NOW_MS - 100)
    await consumer.step(handled)  # orders was empty as of an older fetch
    source.respond(RESULTS, NOW_MS, record(RESULTS, 0, NOW_MS - 500), end=1)

    await consumer.step(handled)  # no orders response as new as the record's yet
    assert handled == []

    source.respond(ORDERS, NOW_MS + 5, end=0)
    await consumer.step(handled)
    assert handled == ["results-0"]


async def test_partitions_are_merged_by_timestamp() -> None:
    source, clocks, handled = FakeFetches(), Clocks(), Handled()
    consumer = merge(source, clocks)
    source.respond(ORDERS, NOW_MS, record(ORDERS, 0, NOW_MS - 900),
                   record(ORDERS, 1, NOW_MS - 700), end=2)  # fmt: skip
    source.respond(RESULTS, NOW_MS, record(RESULTS, 0, NOW_MS - 800), end=1)

    await consumer.step(handled)

    assert handled == ["orders-0", "results-0", "orders-1"]


async def test_a_record_just_committed_goes_as_soon_as_the_others_are_read_to_their_ends() -> None:
    source, clocks, handled = FakeFetches(), Clocks(), Handled()
    consumer = merge(source, clocks)
    source.partitions[ORDERS] = _Partition(position=0, end=0, fetched_ms=NOW_MS)
    # Committed this very millisecond: no delay once orders is known to hold nothing before it.
    source.respond(RESULTS, NOW_MS, record(RESULTS, 0, NOW_MS), end=1)

    await consumer.step(handled)

    assert handled == ["results-0"]


async def test_a_record_waits_while_another_partition_has_a_transaction_in_flight() -> None:
    source, clocks, handled = FakeFetches(), Clocks(), Handled()
    consumer = merge(source, clocks)
    source.partitions[ORDERS] = _Partition(position=0, end=1, fetched_ms=NOW_MS)  # no marker yet
    source.respond(RESULTS, NOW_MS, record(RESULTS, 0, NOW_MS), end=1)
    await consumer.step(handled)
    assert handled == []

    source.respond(ORDERS, NOW_MS + 2, record(ORDERS, 0, NOW_MS - 1), end=1)  # committed
    await consumer.step(handled)

    assert handled == ["orders-0", "results-0"]


async def test_a_held_record_waits_on_the_broker_no_longer_than_its_fetch_max_wait() -> None:
    source, clocks, handled = FakeFetches(), Clocks(), Handled()
    consumer = merge(source, clocks, held_wait_ms=50)
    await consumer.step(handled)  # nothing held: a long wait for records
    source.partitions[ORDERS] = _Partition(position=0, end=1, fetched_ms=NOW_MS)
    source.respond(RESULTS, NOW_MS, record(RESULTS, 0, NOW_MS), end=1)
    await consumer.step(handled)

    await consumer.step(handled)  # results-0 is held: the next fetch answers within 50 ms

    assert source.waits_ms[-1] == 50 < source.waits_ms[0]


async def test_a_partition_that_cannot_be_read_to_its_end_holds_the_merge_at_most_the_limit() -> (
    None
):
    source, clocks, handled = FakeFetches(), Clocks(), Handled()
    consumer = merge(source, clocks, max_hold_s=5.0)
    source.partitions[ORDERS] = _Partition(position=3, end=4, fetched_ms=NOW_MS)  # open txn
    source.respond(RESULTS, NOW_MS, record(RESULTS, 0, NOW_MS - 500), end=1)
    await consumer.step(handled)
    clocks.monotonic_s += 4.9
    await consumer.step(handled)
    assert handled == []

    clocks.monotonic_s += 0.1
    await consumer.step(handled)

    assert handled == ["results-0"]


async def test_only_handed_over_records_are_committed_at_most_every_interval() -> None:
    source, clocks, handled = FakeFetches(), Clocks(), Handled()
    consumer = merge(source, clocks, commit_every_s=1.0)
    source.respond(ORDERS, NOW_MS, record(ORDERS, 0, NOW_MS - 900), end=2)  # offset 1 in flight
    source.respond(RESULTS, NOW_MS, record(RESULTS, 0, NOW_MS - 10), end=1)
    await consumer.step(handled)
    assert (handled, source.commits) == (["orders-0"], [])

    clocks.monotonic_s += 1.0
    await consumer.step(handled)

    assert source.commits == [{ORDERS: 1}]
    clocks.monotonic_s += 1.0
    source.respond(ORDERS, NOW_MS + 100, end=2)
    source.partitions[ORDERS].position = 2  # its transaction was aborted: read past, no record
    await consumer.step(handled)
    assert handled == ["orders-0", "results-0"]
    assert source.commits == [{ORDERS: 1}, {RESULTS: 1}]
