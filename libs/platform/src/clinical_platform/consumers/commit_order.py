"""Records of several partitions (and topics) merged in commit order, causes before effects.

Kafka orders records within a partition only. A consumer that must see an order's signature
before its result (different topics, different partitions) merges the partitions by the
records' timestamps, holding a record back until every other partition has either shown a
later record or been read up to its end (high watermark) as a fetch response no older than the
record's showed it. A record committed before this one was visible lies below that end, even
while its transaction's commit marker (which Kafka writes after the producer's commit returns)
is still on its way: the position passes the end only once that marker was read.

No fixed delay: a record goes as soon as the fetch response that brought it shows every other
partition read to its end, which is the common case (one broker answers for every partition in
one response). A held record waits on the broker, not on a timer: the records that release it
wake the merge, and a fetch that brings none (an aborted transaction, another broker's idle
partitions) answers within the consumer's ``fetch_max_wait_ms``. A partition that cannot be
read to its end (a transaction left open) holds the merge back at most ``max_hold_s``.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from clinical_platform.clients.kafka import KafkaConnection, build_consumer
from clinical_platform.eventlog.topics import TopicSpec, ensure_topics
from clinical_platform.observability.consumer_lag import LagWatcher, watch_lag
from clinical_platform.observability.consumers import traced_handler

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
Handler: TypeAlias = Callable[[Record], Awaitable[None]]

# The broker answers a fetch as soon as a record is committed, and within this even when none
# is: how stale another partition's end can get while a record waits for it.
FETCH_MAX_WAIT_MS = 50
# Nothing held: wait for records as long as this (the broker wakes us when one arrives).
_IDLE_WAIT_MS = 1000
_FETCH_MAX_RECORDS = 1000
_ENDS_KEPT = 64


class PartitionFetches(Protocol):
    """What the merge reads from: an `AIOKafkaConsumer` (or a fake of one in tests)."""

    def assignment(self) -> set[TopicPartition]: ...

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]: ...

    def last_poll_timestamp(self, partition: TopicPartition) -> int:
        """When the last fetch response for the partition came (wall clock, ms)."""
        ...

    def highwater(self, partition: TopicPartition) -> int | None:
        """The partition's end that response reported."""
        ...

    async def position(self, partition: TopicPartition) -> int: ...

    async def commit(
        self, offsets: Mapping[TopicPartition, OffsetAndMetadata] | None = None
    ) -> None: ...


@dataclass(frozen=True)
class _Arrival:
    """A record waiting in the merge, with the fetch that brought it."""

    record: Record
    fetched_ms: int  # when the fetch response holding it came (wall clock, as aiokafka keeps)
    arrived: float  # monotonic


class _Ends:
    """Per partition, the high watermarks fetch responses reported, and when they came."""

    def __init__(self) -> None:
        self._seen: dict[TopicPartition, deque[tuple[int, int]]] = {}

    def observe(self, source: PartitionFetches) -> None:
        for tp in source.assignment():
            at, end = source.last_poll_timestamp(tp), source.highwater(tp)
            if at is None or end is None:
                continue
            seen = self._seen.setdefault(tp, deque(maxlen=_ENDS_KEPT))
            if seen and seen[-1][0] == at:
                # Two responses within one millisecond: keep the later (higher) end, so an end
                # "at or after" a record's fetch is never one from before it.
                seen[-1] = (at, max(end, seen[-1][1]))
            else:
                seen.append((at, end))

    def after(self, tp: TopicPartition, fetched_ms: int) -> int | None:
        """The partition's end in the first response at or after ``fetched_ms`` (None: none
        yet). Once that one is forgotten, a later one: a higher end, so still safe."""
        seen = self._seen.get(tp, ())
        return next((end for at, end in seen if at >= fetched_ms), None)


class CommitOrderMerge:
    """Hands the records of every assigned partition to a handler in commit order.

    Offsets are committed (at most every ``commit_every_s``) only for records the handler has
    finished with, so a restart re-reads what was not handled; handlers must be idempotent.
    """

    def __init__(
        self,
        source: PartitionFetches,
        *,
        held_wait_ms: int = FETCH_MAX_WAIT_MS,
        max_hold_s: float = 5.0,
        commit_every_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._held_wait_ms = held_wait_ms
        self._max_hold_s = max_hold_s
        self._commit_every_s = commit_every_s
        self._monotonic = monotonic
        self._buffers: dict[TopicPartition, deque[_Arrival]] = {}
        self._ends = _Ends()
        self._handled: dict[TopicPartition, int] = {}
        self._committed_at = monotonic()

    async def run(self, handle: Handler) -> None:
        """Fetch, merge and hand over until cancelled."""
        while True:
            await self.step(handle)

    @property
    def holding(self) -> bool:
        """Whether records wait for other partitions to be read past them."""
        return any(self._buffers.values())

    async def step(self, handle: Handler) -> None:
        """One wait on the broker; hand over every record that may go now; commit if due."""
        batch = await self._source.getmany(
            timeout_ms=self._held_wait_ms if self.holding else _IDLE_WAIT_MS,
            max_records=_FETCH_MAX_RECORDS,
        )
        self._ends.observe(self._source)
        now = self._monotonic()
        for tp, records in batch.items():
            fetched_ms = self._source.last_poll_timestamp(tp) or 0
            queue = self._buffers.setdefault(tp, deque())
            queue.extend(_Arrival(record, fetched_ms, now) for record in records)
        positions = {tp: await self._source.position(tp) for tp in self._source.assignment()}
        while (head_tp := _earliest(self._buffers)) is not None:
            head = self._buffers[head_tp][0]
            if not self._may_hand_over(head, head_tp, positions):
                break
            self._buffers[head_tp].popleft()
            await handle(head.record)
            self._handled[head_tp] = head.record.offset
        if self._handled and self._monotonic() - self._committed_at >= self._commit_every_s:
            offsets = {tp: OffsetAndMetadata(o + 1, "") for tp, o in self._handled.items()}
            await self._source.commit(offsets)
            self._handled.clear()
            self._committed_at = self._monotonic()

    def _may_hand_over(
        self, head: _Arrival, head_tp: TopicPartition, positions: Mapping[TopicPartition, int]
    ) -> bool:
        """Whether no partition can still produce a record committed before this one.

        Every other partition must either have a later record buffered (this one is the
        earliest), or have been read up to its end as a fetch response no older than this
        record's showed it.
        """
        if self._monotonic() - head.arrived >= self._max_hold_s:
            return True
        for tp, position in positions.items():
            if tp == head_tp or self._buffers.get(tp):
                continue
            end = self._ends.after(tp, head.fetched_ms)
            if end is None or position < end:
                return False
        return True


def _earliest(buffers: Mapping[TopicPartition, deque[_Arrival]]) -> TopicPartition | None:
    heads = [(q[0].record.timestamp, tp.topic, tp.partition, tp) for tp, q in buffers.items() if q]
    return min(heads)[3] if heads else None


async def consume_in_commit_order(
    connection: KafkaConnection,
    topics: Iterable[str],
    *,
    group: str,
    handle: Handler,
    topic_specs: Sequence[TopicSpec] = (),
    **options: Any,
) -> None:
    """Read every partition of ``topics`` as consumer group ``group`` and hand their records
    to ``handle`` in commit order, until cancelled. ``topic_specs`` are created first when
    missing, so the consumer never asks for a topic its writer has not made yet."""
    await ensure_topics(connection, topic_specs)
    options = {"fetch_max_wait_ms": FETCH_MAX_WAIT_MS} | options
    consumer = build_consumer(connection, group_id=group, **options)
    consumer.subscribe(list(topics))
    lag: LagWatcher | None = None
    try:
        await consumer.start()
        lag = watch_lag(consumer, group)
        merge = CommitOrderMerge(consumer, held_wait_ms=int(options["fetch_max_wait_ms"]))
        # Each record in a consumer span that continues its producer's trace.
        await merge.run(traced_handler(handle, group, lag))
    finally:
        if lag is not None:
            await lag.stop()
        with contextlib.suppress(Exception):
            await consumer.stop()
