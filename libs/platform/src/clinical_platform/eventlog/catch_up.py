"""Bringing a partition's local store up to date with the topic, before its writer takes appends."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import TopicPartition
from google.protobuf.message import DecodeError

from clinical.events.v1.envelope_pb2 import Envelope
from clinical.events.v1.payload_encryption_pb2 import ENCRYPTION_ALGORITHM_AES_256_GCM
from clinical_platform.clients.kafka import KafkaConnection, build_consumer
from clinical_platform.eventlog.local_store import AppliedRecord, PartitionStore

logger = logging.getLogger(__name__)

# Per fetch: a rebuild of a long history is bounded by round trips to the broker, so each
# fetch takes several MiB of the partition (its records are applied in one SQLite transaction).
_FETCH_BYTES = 16 * 1024 * 1024


async def catch_up(
    kafka: KafkaConnection, partition: TopicPartition, store: PartitionStore, step_s: float
) -> None:
    """Apply every committed record after the store's offset, up to the last stable offset
    (``step_s``: the longest connecting or asking for the end may take)."""
    # read_committed (the builder's default): only what the writers committed is applied.
    consumer = build_consumer(kafka, max_partition_fetch_bytes=_FETCH_BYTES)
    try:
        await asyncio.wait_for(consumer.start(), step_s)
        consumer.assign([partition])
        consumer.seek(partition, store.next_offset())
        # read_committed: the end is the last stable offset, past every committed record.
        end = (await asyncio.wait_for(consumer.end_offsets([partition]), step_s))[partition]
        applied = 0
        while await consumer.position(partition) < end:
            # Short polls: when only a commit marker is left before `end`, a fetch returns
            # no records and a long poll would wait its full timeout.
            fetched = await consumer.getmany(partition, timeout_ms=50)
            records = []
            for record in fetched.get(partition, []):
                try:
                    envelope = Envelope.FromString(record.value)
                except DecodeError:
                    logger.error("undecodable record skipped", extra={"offset": record.offset})
                    continue
                if envelope.patient_id and not _sealed(envelope):
                    # Our writers encrypt every patient's event: this one is a forgery, and
                    # must not become an aggregate's head that genuine events chain onto.
                    logger.error(
                        "unencrypted patient event skipped", extra={"offset": record.offset}
                    )
                    continue
                records.append(AppliedRecord(record.offset, envelope, record.value))
            store.apply_from_log(records)
            applied += len(records)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(consumer.stop(), 5)
    where = {"topic": partition.topic, "partition": partition.partition}
    logger.info("caught up", extra={**where, "records": applied, "end": end})


def _sealed(envelope: Envelope) -> bool:
    # Whether the payload says it is ciphertext; the readers that open it check the rest.
    return envelope.payload_encryption.algorithm == ENCRYPTION_ALGORITHM_AES_256_GCM
