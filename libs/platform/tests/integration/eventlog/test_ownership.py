"""Partition ownership: fencing a zombie writer, catching up after a restart, rebuilding."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.eventlog import EventStoreFactory, make_envelope, read_topic

from clinical_platform.eventlog.errors import NotPartitionOwnerError, WriterFencedError
from clinical_platform.security.chain import verify_chain

pytestmark = pytest.mark.integration


async def test_after_ownership_moves_the_old_writer_cannot_append(
    event_store: EventStoreFactory,
) -> None:
    old = await event_store()
    aggregate_id = str(uuid.uuid4())
    await old.append(aggregate_id, 0, [make_envelope(aggregate_id, 1, "before-move")])

    new = await event_store()  # same partitions, its own state: it fences the old writer

    with pytest.raises(WriterFencedError):
        await old.append(aggregate_id, 1, [make_envelope(aggregate_id, 2, "from-zombie")])
    with pytest.raises(WriterFencedError):
        await old.append(aggregate_id, 1, [make_envelope(aggregate_id, 2, "zombie-again")])
    moved = await new.append(aggregate_id, 1, [make_envelope(aggregate_id, 2, "after-move")])
    assert moved.version == 2


async def test_a_command_for_another_replicas_partition_is_refused_with_the_owner(
    event_store: EventStoreFactory,
) -> None:
    replica0 = await event_store(ordinal=0, replicas=2, partitions=4)
    foreign = next(
        aggregate_id
        for aggregate_id in (str(uuid.uuid4()) for _ in range(100))
        if replica0.partition_of(aggregate_id) % 2 == 1
    )

    with pytest.raises(NotPartitionOwnerError) as refused:
        await replica0.append(foreign, 0, [make_envelope(foreign, 1, "wrong-replica")])

    assert refused.value.owner_address == "test-1:50000"
    assert replica0.owned_partitions == [0, 2]


async def test_a_restarted_replica_catches_up_and_rebuilds_a_deleted_store(
    servers: ServerEndpoints, event_store: EventStoreFactory, tmp_path: Path
) -> None:
    state = tmp_path / "replica-state"
    first = await event_store(state_dir=state)
    aggregates = [str(uuid.uuid4()) for _ in range(5)]
    for aggregate_id in aggregates:
        for version in range(1, 4):
            request = f"{aggregate_id}-{version}"
            await first.append(
                aggregate_id, version - 1, [make_envelope(aggregate_id, version, request)]
            )
    await first.stop()

    restarted = await event_store(state_dir=state)
    continued = await restarted.append(aggregates[0], 3, [make_envelope(aggregates[0], 4, "next")])
    await restarted.stop()
    shutil.rmtree(state)
    rebuilt = await event_store(state_dir=state)

    assert continued.version == 4
    assert [rebuilt.current_version(a) for a in aggregates] == [4, 3, 3, 3, 3]
    replay = await rebuilt.append(
        aggregates[1], 2, [make_envelope(aggregates[1], 3, f"{aggregates[1]}-3")]
    )
    assert replay.replayed
    assert replay.version == 3
    on_topic = await read_topic(servers.kafka_bootstrap_servers, rebuilt.topic)
    assert len(on_topic) == 16
    # The chain continued across the restart and the rebuild: heads came from the stores.
    assert verify_chain(on_topic).ok
