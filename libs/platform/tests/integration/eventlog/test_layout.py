"""An event topic's layout (partition count, writer replica count) is recorded when it is laid
out; a writer that finds it drifted refuses to start, in one line."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.admin import NewPartitions
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.eventlog import EventStoreFactory, make_envelope

from clinical_platform.clients.kafka import build_admin
from clinical_platform.eventlog.errors import TopicLayoutError
from clinical_platform.eventlog.layout import TopicLayout, forget_layout
from clinical_platform.eventlog.store import EventStore

pytestmark = pytest.mark.integration


@pytest.fixture
async def laid_out(event_store: EventStoreFactory) -> EventStore:
    """A two-partition event topic, written once and stopped."""
    store = await event_store(partitions=2)
    aggregate_id = str(uuid.uuid4())
    await store.append(aggregate_id, 0, [make_envelope(aggregate_id, 1, "req-1")])
    await store.stop()
    return store


async def test_a_topic_whose_partitions_were_increased_refuses_to_start(
    servers: ServerEndpoints, event_store: EventStoreFactory, laid_out: EventStore
) -> None:
    admin = build_admin(servers.kafka)
    await admin.start()
    try:
        await admin.create_partitions({laid_out.topic: NewPartitions(total_count=3)})
    finally:
        await admin.close()

    with pytest.raises(TopicLayoutError) as refused:
        await event_store(partitions=3)

    message = str(refused.value)
    assert "\n" not in message
    assert f"{laid_out.topic} was laid out for 2 partitions and 1 writer replicas" in message
    assert "now has 3 partitions" in message


async def test_a_replica_counting_other_writer_replicas_refuses_to_start(
    event_store: EventStoreFactory, laid_out: EventStore
) -> None:
    with pytest.raises(TopicLayoutError) as refused:
        await event_store(partitions=2, ordinal=1, replicas=2)

    assert "this replica counts 2 writer replicas" in str(refused.value)


async def test_writers_rescaled_on_purpose_start_after_the_layout_is_forgotten(
    servers: ServerEndpoints, event_store: EventStoreFactory, laid_out: EventStore
) -> None:
    await forget_layout(servers.kafka, laid_out.topic)

    first, second = [
        await event_store(partitions=2, ordinal=ordinal, replicas=2) for ordinal in (0, 1)
    ]

    assert (first.owned_partitions, second.owned_partitions) == ([0], [1])
    assert TopicLayout(2, 2).describe() == "2 partitions and 2 writer replicas"
