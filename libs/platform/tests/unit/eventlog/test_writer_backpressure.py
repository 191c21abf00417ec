"""A partition writer under more load than it can commit: refused at once, nothing queued."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from clinical_platform.clients.kafka import KafkaConnection, KafkaSecurity
from clinical_platform.eventlog.appends import PendingAppend
from clinical_platform.eventlog.errors import EventLogUnavailableError, WriterOverloadedError
from clinical_platform.eventlog.local_store import PartitionStore
from clinical_platform.eventlog.writer import PartitionWriter, WriterConfig

pytestmark = pytest.mark.unit

TOPIC = "clinical.notes.events.v1"


def _pending() -> PendingAppend:
    return PendingAppend(str(uuid.uuid4()), 0, str(uuid.uuid4()), [])


async def test_an_append_beyond_the_queue_depth_is_overloaded_and_queues_nothing(
    tmp_path: Path,
) -> None:
    config = WriterConfig(
        # Port 9 (discard) on loopback: the writer is never started, so nothing connects.
        kafka=KafkaConnection("127.0.0.1:9", KafkaSecurity("PLAINTEXT")),
        topic=TOPIC,
        partition=3,
        transactional_id=f"{TOPIC}.p3",
        max_queued=2,
        overloaded_retry_after_s=0.25,
    )
    writer = PartitionWriter(config, PartitionStore(tmp_path / "p3.sqlite", TOPIC, 3))
    # Not started: nothing takes appends off the queue, as when commits cannot keep up.
    waiting = [asyncio.ensure_future(writer.append(_pending())) for _ in range(2)]
    await asyncio.sleep(0)

    with pytest.raises(WriterOverloadedError) as overloaded:
        await writer.append(_pending())

    assert (overloaded.value.partition, overloaded.value.retry_after_s) == (3, 0.25)
    await writer.stop()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    # Only the two queued appends were ever held; the refused one never was.
    assert [type(outcome) for outcome in outcomes] == [EventLogUnavailableError] * 2
    writer.store.close()
