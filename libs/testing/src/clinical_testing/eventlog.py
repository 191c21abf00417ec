"""Event log test helpers: stores on the real broker (own topic and state each), raw reads."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf.wrappers_pb2 import StringValue

from clinical.events.v1.envelope_pb2 import Envelope
from clinical.events.v1.provenance_pb2 import PURPOSE_OF_USE_TREAT
from clinical_platform.clients.kafka import KafkaConnection
from clinical_platform.eventlog.layout import layout_topic
from clinical_platform.eventlog.partitioning import PartitionOwnership
from clinical_platform.eventlog.store import EventStore, EventStoreConfig
from clinical_platform.eventlog.topics import events_topic
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.kafka import Broker, delete_topics, read_records
from clinical_testing.plugin import unique_name

EventStoreFactory = Callable[..., Awaitable[EventStore]]


def make_envelope(aggregate_id: str, version: int, request_id: str, note: str = "") -> Envelope:
    """A minimal valid envelope; the payload is a well-known type, as tests add no protos."""
    envelope = Envelope(
        event_id=str(uuid.uuid4()),
        event_type="NoteRecorded",
        schema_version=1,
        source="//clinical/test",
        aggregate_type="Note",
        aggregate_id=aggregate_id,
        aggregate_version=version,
        purpose_of_use=PURPOSE_OF_USE_TREAT,
        request_id=request_id,
        payload_type="google.protobuf.StringValue",
        payload=StringValue(value=note).SerializeToString(),
    )
    envelope.occurred_at.FromDatetime(datetime.now(UTC))
    envelope.actor.subject = "test-clinician"
    return envelope


@pytest.fixture
async def event_store(servers: ServerEndpoints, tmp_path: Path) -> AsyncIterator[EventStoreFactory]:
    """Build event stores for one unique service topic; all stopped and the topic deleted after."""
    service = unique_name("test-")
    stores: list[EventStore] = []

    async def build(
        *, state_dir: Path | None = None, partitions: int = 3, kafka: KafkaConnection | None = None,
        ordinal: int = 0, replicas: int = 1,
    ) -> EventStore:  # fmt: skip
        store = EventStore(
            EventStoreConfig(
                service=service,
                kafka=kafka or servers.kafka,
                ownership=PartitionOwnership(ordinal, replicas, "test-{ordinal}:50000"),
                state_dir=state_dir or tmp_path / f"state-{len(stores)}",
                partitions=partitions,
                commit_timeout_s=5.0,
            )
        )
        await store.start()
        stores.append(store)
        return store

    yield build
    for store in stores:
        await store.stop()
    # Stores on a private broker leave nothing here; that broker goes away with its test.
    topic = events_topic(service)
    await delete_topics(servers.kafka_bootstrap_servers, [topic, layout_topic(topic)])


async def read_topic(bootstrap: Broker, topic: str) -> list[Envelope]:
    """Every committed envelope on the topic, read by a plain consumer from offset 0."""
    return [Envelope.FromString(r.value) for r in await read_records(bootstrap, topic)]
