"""Moves access records from the outbox to Kafka, off the request path.

`OutboxPublisher.run` wakes when a record is added (or every ``poll_interval_s``), sends every
pending record to a `RecordSink` (`KafkaAccessTopic`: an idempotent producer, key: the patient),
waits for all acknowledgements, then removes those records from the outbox. A failure leaves
them pending: they are sent again on the next round, or by the next process that opens the
same outbox, so delivery is at least once and consumers deduplicate by ``record_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from clinical_platform.access.outbox import AsyncOutbox, OutboxEntry
from clinical_platform.access.records import ACCESS_TOPIC
from clinical_platform.clients.kafka import KafkaConnection, build_admin, build_producer
from clinical_platform.eventlog.topics import TopicSpec, ensure_topic
from clinical_platform.observability.access import outbox_depth
from clinical_platform.settings import BaseServiceSettings

logger = logging.getLogger(__name__)

OUTBOX_FILE = "access-outbox.sqlite"


@dataclass(frozen=True)
class AccessAuditConfig:
    """Where access records go, where they wait, and which service records them."""

    kafka: KafkaConnection
    outbox_path: Path
    # URI reference of the recording service, e.g. "//clinical/orders" (AccessRecord.source).
    source: str
    topic: str = ACCESS_TOPIC
    partitions: int = 6
    replication_factor: int = 1
    min_insync_replicas: int = 1
    batch_size: int = 500
    poll_interval_s: float = 1.0
    retry_delay_s: float = 0.5
    max_retry_delay_s: float = 30.0
    # How long start() tries to reach Kafka (and create the topic) before leaving it to the
    # publisher's retries; and how long stop() tries to publish what is pending.
    start_timeout_s: float = 5.0
    stop_timeout_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: BaseServiceSettings, *, service: str) -> AccessAuditConfig:
        """The outbox in the replica's state dir (one per replica), the shared access topic."""
        return cls(
            kafka=KafkaConnection.from_settings(settings),
            outbox_path=settings.state_dir / OUTBOX_FILE,
            source=f"//clinical/{service}",
            topic=settings.access_audit_topic,
            partitions=settings.access_audit_partitions,
            replication_factor=settings.kafka_replication_factor,
            min_insync_replicas=settings.kafka_min_insync_replicas,
        )


def access_topic_spec(config: AccessAuditConfig) -> TopicSpec:
    """Kept forever and never compacted, like the event topics: it is an audit log."""
    return TopicSpec(
        name=config.topic,
        partitions=config.partitions,
        replication_factor=config.replication_factor,
        configs={
            "retention.ms": "-1",
            "retention.bytes": "-1",
            "cleanup.policy": "delete",
            "min.insync.replicas": str(config.min_insync_replicas),
            "unclean.leader.election.enable": "false",
            "compression.type": "zstd",
        },
    )


class RecordSink(Protocol):
    """Where published access records go."""

    async def start(self) -> None: ...

    async def send(self, entries: Sequence[OutboxEntry]) -> None:
        """Return once every entry is acknowledged; raise if any may not be."""
        ...

    async def stop(self) -> None: ...


class KafkaAccessTopic:
    """The access topic (created if missing), written by an idempotent producer."""

    def __init__(self, config: AccessAuditConfig) -> None:
        self._config = config
        # The builder's acks=all + idempotence: a send retried within a session is written once.
        self._producer = build_producer(config.kafka, linger_ms=5)

    async def start(self) -> None:
        admin = build_admin(self._config.kafka)
        await admin.start()
        try:
            await ensure_topic(admin, access_topic_spec(self._config))
        finally:
            await admin.close()
        await self._producer.start()

    async def send(self, entries: Sequence[OutboxEntry]) -> None:
        topic = self._config.topic
        acknowledgements = [
            await self._producer.send(topic, entry.value, key=entry.key) for entry in entries
        ]
        await asyncio.gather(*acknowledgements)

    async def stop(self) -> None:
        await self._producer.stop()


SinkFactory = Callable[[AccessAuditConfig], RecordSink]


class OutboxPublisher:
    """Publishes the outbox to the access topic until cancelled."""

    def __init__(
        self, outbox: AsyncOutbox, config: AccessAuditConfig, sink_factory: SinkFactory
    ) -> None:
        self._outbox = outbox
        self._config = config
        self._sink_factory = sink_factory
        self._sink: RecordSink | None = None
        self._work = asyncio.Event()
        self._unfinished: asyncio.Future[None] | None = None
        self.published = 0

    def notify(self) -> None:
        """A record was added: publish without waiting for the next poll."""
        self._work.set()

    async def run(self) -> None:
        delay = self._config.retry_delay_s
        while True:
            try:
                while await self.publish_pending():
                    pass
                delay = self._config.retry_delay_s
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._config.poll_interval_s):
                        await self._work.wait()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Kafka away or refusing: the records stay in the outbox for the next round.
                logger.warning(
                    "access records not published; retrying",
                    extra={"error": type(error).__name__, "retry_in_s": delay},
                )
                await self.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._config.max_retry_delay_s)

    async def connect(self) -> None:
        """Start the sink now, creating the topic, so its consumers find it before any record
        exists. With Kafka away the records wait in the outbox and the next round retries."""
        try:
            async with asyncio.timeout(self._config.start_timeout_s):
                await self._started_sink()
        except Exception as error:
            logger.warning(
                "access topic not reachable at start; records wait in the outbox",
                extra={"error": type(error).__name__},
            )

    async def publish_pending(self) -> int:
        """Send one batch of pending records and remove them once acknowledged; return how many."""
        unfinished, self._unfinished = self._unfinished, None
        if unfinished is not None:
            # A round cancelled mid-batch (the log stopping): that batch ends before the outbox
            # is read again, or its records would be read and sent a second time.
            with contextlib.suppress(Exception):
                await unfinished
        self._work.clear()
        outbox_depth(await self._outbox.count())
        entries = await self._outbox.pending(self._config.batch_size)
        if not entries:
            return 0
        sink = await self._started_sink()
        # Sent and removed together even when this round is cancelled in between.
        self._unfinished = asyncio.ensure_future(self._send_and_remove(sink, entries))
        await asyncio.shield(self._unfinished)
        self._unfinished = None
        return len(entries)

    async def _send_and_remove(self, sink: RecordSink, entries: Sequence[OutboxEntry]) -> None:
        await sink.send(entries)
        await self._outbox.remove([entry.seq for entry in entries])
        self.published += len(entries)

    async def close(self) -> None:
        """Stop the sink; the next round starts a fresh one."""
        sink, self._sink = self._sink, None
        if sink is not None:
            with contextlib.suppress(Exception):
                await sink.stop()

    async def _started_sink(self) -> RecordSink:
        if self._sink is None:
            sink = self._sink_factory(self._config)
            try:
                await sink.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await sink.stop()
                raise
            self._sink = sink
        return self._sink
