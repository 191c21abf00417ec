"""The single writer of one partition: transactional appends with group commit and fencing.

Every append for the partition goes through one queue. The writer takes everything queued,
checks each append against the local store (expected version, request id), writes the accepted
ones to Kafka in one transaction, and only after the commit applies them to the local store and
answers the callers. A newer writer with the same transactional id fences this one for good.

When a commit fails, its outcome may be unknown (the broker may have committed and then lost
the connection). The writer then answers UNAVAILABLE, replaces its producer (which aborts any
open transaction) and catches up from the topic before it takes the next append, so a retry
with the same request id finds the first outcome instead of writing twice. Any other failure
of a batch (the local store failing after the commit, say) is handled the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced

from clinical_platform.clients.kafka import KafkaConnection, build_producer
from clinical_platform.eventlog.appends import AppendResult, PendingAppend, follow
from clinical_platform.eventlog.batching import AppendQueue
from clinical_platform.eventlog.catch_up import catch_up
from clinical_platform.eventlog.envelope import cloudevents_headers, set_timestamp
from clinical_platform.eventlog.errors import (
    ConcurrencyError,
    EventLogUnavailableError,
    WriterFencedError,
    WriterOverloadedError,
)
from clinical_platform.eventlog.hash_chain import ChainSealer
from clinical_platform.eventlog.local_store import AppliedRecord, PartitionStore
from clinical_platform.eventlog.record_batches import RecordBatches
from clinical_platform.observability.eventlog import CommitMetrics
from clinical_platform.observability.messaging import publishing

__all__ = [
    "PartitionWriter",
    "ProducerFactory",
    "WriterConfig",
    "transactional_producer",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriterConfig:
    kafka: KafkaConnection
    topic: str
    partition: int
    transactional_id: str
    max_batch: int = 500
    # The longest a writer waits for more appends before committing, when its last batch
    # showed concurrent callers (batching.AppendQueue). A lone caller never waits.
    linger_s: float = 0.05
    # A commit that takes longer than this has an unknown outcome; the writer recovers.
    commit_timeout_s: float = 15.0
    transaction_timeout_ms: int = 30_000
    # Appends waiting for the writer at most; past it an append is refused, nothing written.
    max_queued: int = 10_000
    # What a refused caller is told to wait: about one group commit under load.
    overloaded_retry_after_s: float = 0.5


ProducerFactory = Callable[[WriterConfig], AIOKafkaProducer]


def transactional_producer(config: WriterConfig) -> AIOKafkaProducer:
    # One transactional id per partition (on top of the builder's acks=all + idempotence): a
    # zombie replica that still holds the partition is fenced.
    return build_producer(
        config.kafka,
        transactional_id=config.transactional_id,
        transaction_timeout_ms=config.transaction_timeout_ms,
        request_timeout_ms=int(config.commit_timeout_s * 1000),
        linger_ms=0,
        # A refused transactional request (CONCURRENT_TRANSACTIONS on EndTxn, a coordinator
        # loading) is retried soon rather than after the default 100 ms; the AddPartitionsToTxn
        # retry right after a commit has its own backoff (clients.kafka).
        retry_backoff_ms=5,
        # The topic stores zstd; producing it already saves the broker a recompression.
        compression_type="zstd",
        # A group commit's events go in one record batch (one produce request), up to just
        # under the broker's default 1 MiB message.max.bytes; aiokafka's 16 KiB default split a
        # large commit into batches sent one round trip after another.
        max_batch_size=1_000_000,
    )


class PartitionWriter:
    """Owns one partition: appends to it, and keeps its local store in step with the topic."""

    def __init__(
        self,
        config: WriterConfig,
        store: PartitionStore,
        producer_factory: ProducerFactory = transactional_producer,
    ) -> None:
        self._config = config
        self._store = store
        self._producer_factory = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self._queue = AppendQueue(
            max_batch=config.max_batch, linger_s=config.linger_s, max_depth=config.max_queued
        )
        self._task: asyncio.Task[None] | None = None
        self._fenced = False

    @property
    def store(self) -> PartitionStore:
        return self._store

    @property
    def fenced(self) -> bool:
        return self._fenced

    async def start(self) -> None:
        """Fence older writers, catch up from the topic, then take appends."""
        await self._recover()
        self._task = asyncio.create_task(self._run(), name=f"writer-{self._config.partition}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for pending in self._queue.drain():
            pending.fail(EventLogUnavailableError("the writer is stopping"))
        await self._close_producer()

    async def append(self, pending: PendingAppend) -> AppendResult:
        """Queue an append and await its outcome (WriterOverloadedError: too many queued)."""
        if self._fenced:
            raise WriterFencedError(self._config.partition)
        # The producer span: its traceparent goes into the envelopes, so into the headers.
        with publishing(self._config.topic, self._config.partition, pending.envelopes):
            try:
                self._queue.put(pending)
            except asyncio.QueueFull:
                retry_after_s = self._config.overloaded_retry_after_s
                raise WriterOverloadedError(self._config.partition, retry_after_s) from None
            return await pending.done

    async def _run(self) -> None:
        while True:
            batch = await self._queue.next_batch()
            try:
                await self._write(batch)
            except Exception as error:
                # Anything may have failed after a commit (the local store refusing its write,
                # say): answering the next batch from this store could write a version twice.
                # Drop the producer, so the next batch first catches up from the topic.
                logger.exception("event log writer failed a batch", extra=self._log_extra())
                await self._close_producer()
                for pending in batch:
                    pending.fail(EventLogUnavailableError(str(type(error).__name__)))

    async def _write(self, batch: list[PendingAppend]) -> None:
        if self._fenced:
            for pending in batch:
                pending.fail(WriterFencedError(self._config.partition))
            return
        if self._producer is None:
            await self._recover()
        accepted = self._admit(batch)
        if not accepted:
            return
        commit_metrics = CommitMetrics(self._config.topic)
        try:
            committed = await self._commit(accepted)
        except ProducerFenced:
            commit_metrics.fenced()
            self._fenced = True
            logger.error("event log writer fenced by a newer writer", extra=self._log_extra())
            for pending in accepted:
                pending.fail(WriterFencedError(self._config.partition))
            await self._close_producer()
            return
        except (KafkaError, TimeoutError, OSError) as error:
            logger.warning(
                "event log commit failed; outcome unknown, recovering",
                extra={**self._log_extra(), "error": type(error).__name__},
            )
            commit_metrics.aborted()
            for pending in accepted:
                pending.fail(EventLogUnavailableError("the event log did not confirm the append"))
            await self._close_producer()  # the next batch recovers first
            return
        commit_metrics.committed(len(committed))
        self._store.apply(committed)
        for pending in accepted:
            pending.resolve(
                AppendResult(pending.aggregate_id, pending.envelopes[-1].aggregate_version)
            )

    def _admit(self, batch: list[PendingAppend]) -> list[PendingAppend]:
        """Answer replays and stale versions now; return the appends to write, in order."""
        versions: dict[str, int] = {}
        in_flight: dict[tuple[str, str], PendingAppend] = {}
        accepted: list[PendingAppend] = []
        for pending in batch:
            key = (pending.aggregate_id, pending.request_id)
            outcome = self._store.outcome_of(*key)
            if outcome is not None:
                pending.resolve(AppendResult(outcome.aggregate_id, outcome.version, replayed=True))
                continue
            if key in in_flight:
                follow(in_flight[key], pending)
                continue
            if pending.aggregate_id not in versions:
                versions[pending.aggregate_id] = self._store.current_version(pending.aggregate_id)
            actual = versions[pending.aggregate_id]
            if pending.expected_version != actual:
                pending.fail(
                    ConcurrencyError(pending.aggregate_id, pending.expected_version, actual)
                )
                continue
            versions[pending.aggregate_id] = actual + len(pending.envelopes)
            in_flight[key] = pending
            accepted.append(pending)
        return accepted

    async def _commit(self, accepted: list[PendingAppend]) -> list[AppliedRecord]:
        """Send the accepted appends' events in one transaction; the records as committed."""
        producer = self._producer
        if producer is None:
            raise EventLogUnavailableError("no producer")
        recorded_at = datetime.now(UTC)
        # Each event's hash covers recorded_at, so it is sealed right after the stamp, chained
        # onto the aggregate's last event (or the one sealed just before it in this batch).
        sealer = ChainSealer(self._store.last_hash)
        envelopes = [envelope for pending in accepted for envelope in pending.envelopes]
        for envelope in envelopes:
            set_timestamp(envelope.recorded_at, recorded_at)
            sealer.seal(envelope)
        values = [envelope.SerializeToString() for envelope in envelopes]
        await producer.begin_transaction()
        batches = RecordBatches(producer, self._config.topic, self._config.partition)
        try:
            await batches.send(
                [
                    (envelope.aggregate_id.encode(), value, cloudevents_headers(envelope))
                    for envelope, value in zip(envelopes, values, strict=True)
                ]
            )
            # A timeout scope rather than wait_for: no extra task per commit.
            async with asyncio.timeout(self._config.commit_timeout_s):
                # Before the commit, so no crash can lose it: the checkpoint runner attests
                # only the records this writer wrote (anyone able to produce could add others).
                offsets = await batches.offsets()
                self._store.record_own(offsets)
                await producer.commit_transaction()
        except BaseException:
            batches.abandon()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.abort_transaction(), 2)
            raise
        return [
            AppliedRecord(offset, envelope, value)
            for offset, envelope, value in zip(offsets, envelopes, values, strict=True)
        ]

    async def _recover(self) -> None:
        """A fresh producer (fencing older ones, aborting their open transaction), then catch up."""
        await self._close_producer()
        producer = self._producer_factory(self._config)
        try:
            # init_transactions: bumps the epoch, so older producers with this id are fenced.
            await asyncio.wait_for(producer.start(), self._config.commit_timeout_s)
            config = self._config
            partition = TopicPartition(config.topic, config.partition)
            await catch_up(config.kafka, partition, self._store, config.commit_timeout_s)
        except BaseException as error:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 5)
            if isinstance(error, ProducerFenced):
                self._fenced = True
                raise WriterFencedError(self._config.partition) from None
            raise
        # Only a writer that is caught up may take appends.
        self._producer = producer

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 5)

    def _log_extra(self) -> dict[str, object]:
        return {"topic": self._config.topic, "partition": self._config.partition}
