"""A broker killed with SIGKILL in the middle of a burst loses, duplicates and reorders nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from clinical_testing.eventlog import EventStoreFactory, make_envelope, read_topic
from clinical_testing.isolated import IsolatedInfra

from clinical_platform.eventlog.errors import EventLogUnavailableError
from clinical_platform.eventlog.store import EventStore

pytestmark = pytest.mark.integration

AGGREGATES = 40
COMMANDS_PER_AGGREGATE = 50  # 2,000 commands in all
KILL_AFTER_ACKS = 600
DEADLINE_S = 240


@pytest.fixture
def private_kafka(pytestconfig: pytest.Config, tmp_path: Path) -> Iterator[IsolatedInfra]:
    infra = IsolatedInfra(pytestconfig.rootpath, tmp_path / "infra")
    started = infra.localinfra("up", "kafka")
    assert started.returncode == 0, started.stderr
    yield infra
    infra.localinfra("down", "kafka")


async def _run_commands(
    store: EventStore,
    aggregate_id: str,
    acked: dict[str, int],
    retries: Counter[str],
    enough_acked: asyncio.Event,
) -> None:
    """One client: its aggregate's commands in order, each retried with its request id."""
    deadline = time.monotonic() + DEADLINE_S
    for version in range(1, COMMANDS_PER_AGGREGATE + 1):
        request_id = f"{aggregate_id}/{version}"
        while True:
            envelope = make_envelope(aggregate_id, version, request_id)
            try:
                result = await store.append(aggregate_id, version - 1, [envelope])
            except EventLogUnavailableError:
                assert time.monotonic() < deadline, "the log did not recover in time"
                retries[request_id] += 1
                await asyncio.sleep(0.2)  # back off before retrying with the same request id
                continue
            acked[request_id] = result.version
            if len(acked) >= KILL_AFTER_ACKS:
                enough_acked.set()
            break


async def test_sigkilled_broker_mid_burst_keeps_every_acknowledged_command_exactly_once(
    private_kafka: IsolatedInfra, event_store: EventStoreFactory
) -> None:
    store = await event_store(kafka=private_kafka.kafka, partitions=3)
    aggregates = [f"00000000-0000-4000-8000-{n:012d}" for n in range(AGGREGATES)]
    acked: dict[str, int] = {}
    retries: Counter[str] = Counter()
    enough_acked = asyncio.Event()

    async def kill_and_restart_broker() -> None:
        await enough_acked.wait()
        os.kill(private_kafka.pid("kafka"), signal.SIGKILL)
        await asyncio.sleep(2)  # an outage, not a wait: appends fail and retry meanwhile
        restarted = await asyncio.to_thread(private_kafka.localinfra, "up", "kafka")
        assert restarted.returncode == 0, restarted.stderr

    await asyncio.gather(
        kill_and_restart_broker(),
        *(
            _run_commands(store, aggregate_id, acked, retries, enough_acked)
            for aggregate_id in aggregates
        ),
    )

    envelopes = await read_topic(private_kafka.kafka, store.topic)
    per_request = Counter(e.request_id for e in envelopes)
    versions: defaultdict[str, list[int]] = defaultdict(list)
    for envelope in envelopes:
        versions[envelope.aggregate_id].append(envelope.aggregate_version)

    assert len(acked) == AGGREGATES * COMMANDS_PER_AGGREGATE
    assert sum(retries.values()) > 0, "the broker was killed, so some commands must have retried"
    assert set(per_request) == set(acked)
    assert max(per_request.values()) == 1
    assert all(v == list(range(1, COMMANDS_PER_AGGREGATE + 1)) for v in versions.values())
