"""A zombie writer is unhealthy: once a newer writer fenced it, its health check fails for good."""

from __future__ import annotations

import uuid

import pytest
from clinical_testing.eventlog import EventStoreFactory, make_envelope

from clinical_platform.eventlog.errors import WriterFencedError
from clinical_platform.lifecycle import writer_health_check

pytestmark = pytest.mark.integration


async def test_a_writer_fenced_by_a_newer_one_fails_the_event_writer_check(
    event_store: EventStoreFactory,
) -> None:
    old = await event_store(partitions=1)
    check = writer_health_check(old)
    aggregate_id = str(uuid.uuid4())
    await old.append(aggregate_id, 0, [make_envelope(aggregate_id, 1, "before-move")])
    assert await check.failing() is None

    new = await event_store(partitions=1)  # same partition, its own state: it fences the old one
    with pytest.raises(WriterFencedError):
        await old.append(aggregate_id, 1, [make_envelope(aggregate_id, 2, "from-zombie")])

    assert await check.failing() == "fenced off partitions [0] by a newer writer"
    assert await writer_health_check(new).failing() is None
