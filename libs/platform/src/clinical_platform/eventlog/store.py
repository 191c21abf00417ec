"""The event store a service appends to: partition routing, validation, ownership, loading."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.clients.kafka import KafkaConnection, build_admin
from clinical_platform.eventlog.appends import AppendResult, PendingAppend
from clinical_platform.eventlog.envelope import validate_envelope
from clinical_platform.eventlog.errors import (
    EventRejectedError,
    NotPartitionOwnerError,
    WriterFencedError,
)
from clinical_platform.eventlog.layout import TopicLayout, check_layout
from clinical_platform.eventlog.local_store import PartitionStore, RecordedOutcome
from clinical_platform.eventlog.partitioning import PartitionOwnership, partition_for
from clinical_platform.eventlog.ports import AttesterFactory, PartitionAttester
from clinical_platform.eventlog.topics import ensure_topic, event_topic_spec
from clinical_platform.eventlog.writer import (
    PartitionWriter,
    ProducerFactory,
    WriterConfig,
    transactional_producer,
)
from clinical_platform.validation import FieldViolation

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventStoreConfig:
    """How a service's event log is laid out and who writes which partition."""

    service: str
    ownership: PartitionOwnership
    kafka: KafkaConnection
    state_dir: Path
    partitions: int = 6
    replication_factor: int = 1
    min_insync_replicas: int = 1
    # Below the broker's 1 MiB default message.max.bytes, with room for headers.
    max_envelope_bytes: int = 512 * 1024
    max_batch: int = 500
    linger_s: float = 0.05
    commit_timeout_s: float = 15.0
    # Per partition writer: appends waiting beyond this are refused (WriterOverloadedError).
    max_queued_appends: int = 10_000


@dataclass(frozen=True)
class StoredHistory:
    """What the local store holds for an aggregate: a snapshot (if any) and the events after."""

    snapshot: tuple[int, bytes] | None
    envelopes: list[Envelope]


class EventStore:
    """Appends with an expected version, exactly once per request id, on owned partitions."""

    def __init__(
        self,
        config: EventStoreConfig,
        producer_factory: ProducerFactory = transactional_producer,
        *,
        attester_factory: AttesterFactory | None = None,
    ) -> None:
        self._config = config
        # Optional, so tests and benchmarks need no Vault: services pass checkpoint runners.
        self._attester_factory = attester_factory
        self._attesters: list[PartitionAttester] = []
        self._producer_factory = producer_factory
        self._topic = event_topic_spec(
            config.service,
            partitions=config.partitions,
            replication_factor=config.replication_factor,
            min_insync_replicas=config.min_insync_replicas,
        )
        self._partitions = config.partitions
        self._writers: dict[int, PartitionWriter] = {}

    @property
    def topic(self) -> str:
        return self._topic.name

    @property
    def owned_partitions(self) -> list[int]:
        return sorted(self._writers)

    async def start(self) -> None:
        """Create the topic if needed, check its layout, then fence, catch up and open each
        owned partition.

        Raises `TopicLayoutError` when the topic's partition count or the writer replica count
        differs from those recorded when the topic was laid out.
        """
        config = self._config
        admin = build_admin(config.kafka)
        await admin.start()
        try:
            self._partitions = await ensure_topic(admin, self._topic)
            layout = TopicLayout(self._partitions, config.ownership.replica_count)
            await check_layout(
                config.kafka, admin, self.topic, layout,
                replication_factor=config.replication_factor,
                min_insync_replicas=config.min_insync_replicas,
            )  # fmt: skip
        finally:
            await admin.close()
        writers = {
            partition: PartitionWriter(
                self._writer_config(partition), self._open_store(partition), self._producer_factory
            )
            for partition in self._config.ownership.owned(self._partitions)
        }
        # Partitions are independent: fence and catch them up side by side.
        started = await asyncio.gather(
            *(writer.start() for writer in writers.values()), return_exceptions=True
        )
        failures = [outcome for outcome in started if isinstance(outcome, BaseException)]
        if failures:
            for writer in writers.values():
                await writer.stop()
                writer.store.close()
            raise failures[0]
        self._writers.update(writers)
        if self._attester_factory is not None:
            for partition in self.owned_partitions:
                store = self._writers[partition].store
                attester = self._attester_factory(self.topic, partition, store)
                try:
                    await attester.start()
                except BaseException:
                    await self.stop()
                    raise
                self._attesters.append(attester)
        logger.info(
            "event store ready", extra={"topic": self.topic, "owned": self.owned_partitions}
        )

    async def stop(self) -> None:
        for attester in self._attesters:
            await attester.stop()
        self._attesters.clear()
        for writer in self._writers.values():
            await writer.stop()
            writer.store.close()
        self._writers.clear()

    def partition_of(self, aggregate_id: str) -> int:
        return partition_for(aggregate_id, self._partitions)

    def _writer(self, aggregate_id: str) -> PartitionWriter:
        partition = self.partition_of(aggregate_id)
        writer = self._writers.get(partition)
        if writer is None:
            owner = self._config.ownership.address_of_owner(partition)
            raise NotPartitionOwnerError(partition, owner)
        if writer.fenced:
            raise WriterFencedError(partition)
        return writer

    def history(self, aggregate_id: str) -> StoredHistory:
        """The aggregate's latest snapshot and later events; the writer reads its own writes."""
        store = self._writer(aggregate_id).store
        snapshot = store.latest_snapshot(aggregate_id)
        after = snapshot[0] if snapshot else 0
        return StoredHistory(snapshot, store.envelopes(aggregate_id, after_version=after))

    @property
    def fenced_partitions(self) -> list[int]:
        """The owned partitions whose writer a newer writer fenced (this replica is a zombie)."""
        return sorted(p for p, writer in self._writers.items() if writer.fenced)

    def current_version(self, aggregate_id: str) -> int:
        return self._writer(aggregate_id).store.current_version(aggregate_id)

    def outcome_of(self, aggregate_id: str, request_id: str) -> RecordedOutcome | None:
        return self._writer(aggregate_id).store.outcome_of(aggregate_id, request_id)

    def save_snapshot(self, aggregate_id: str, version: int, state: bytes) -> None:
        self._writer(aggregate_id).store.save_snapshot(aggregate_id, version, state)

    async def append(
        self, aggregate_id: str, expected_version: int, envelopes: Sequence[Envelope]
    ) -> AppendResult:
        """Append one command's events; exactly one of concurrent same-version appends wins.

        Raises EventRejectedError (nothing appended) for malformed or oversized events,
        ConcurrencyError when the aggregate is no longer at ``expected_version``,
        NotPartitionOwnerError when another replica owns the aggregate, WriterOverloadedError
        (nothing appended) when too many appends wait for its writer, WriterFencedError or
        EventLogUnavailableError when the outcome could not be confirmed (retry with the same
        request id).
        """
        request_id = self._check_batch(aggregate_id, expected_version, envelopes)
        writer = self._writer(aggregate_id)
        pending = PendingAppend(aggregate_id, expected_version, request_id, list(envelopes))
        return await writer.append(pending)

    def _check_batch(
        self, aggregate_id: str, expected_version: int, envelopes: Sequence[Envelope]
    ) -> str:
        violations: list[FieldViolation] = []
        if not envelopes:
            violations.append(FieldViolation("events", "a command must record at least one event"))
        for index, envelope in enumerate(envelopes):
            try:
                validate_envelope(envelope, max_envelope_bytes=self._config.max_envelope_bytes)
            except EventRejectedError as rejected:
                violations += [
                    FieldViolation(f"events[{index}].{v.field}", v.description)
                    for v in rejected.violations
                ]
            if envelope.aggregate_id != aggregate_id:
                violations.append(
                    FieldViolation(f"events[{index}].aggregate_id", "differs from the command's")
                )
            if envelope.aggregate_version != expected_version + index + 1:
                violations.append(
                    FieldViolation(
                        f"events[{index}].aggregate_version",
                        f"must be {expected_version + index + 1} (versions are gapless)",
                    )
                )
        request_ids = {envelope.request_id for envelope in envelopes}
        if len(request_ids) > 1:
            violations.append(FieldViolation("events.request_id", "differs between events"))
        if violations:
            raise EventRejectedError(violations)
        return request_ids.pop()

    def _writer_config(self, partition: int) -> WriterConfig:
        return WriterConfig(
            kafka=self._config.kafka,
            topic=self.topic,
            partition=partition,
            transactional_id=f"{self.topic}.p{partition}",
            max_batch=self._config.max_batch,
            linger_s=self._config.linger_s,
            commit_timeout_s=self._config.commit_timeout_s,
            max_queued=self._config.max_queued_appends,
        )

    def _open_store(self, partition: int) -> PartitionStore:
        path = self._config.state_dir / f"{self.topic}.p{partition}.sqlite"
        return PartitionStore(path, self.topic, partition)
