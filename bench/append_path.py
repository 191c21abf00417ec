"""The full append path behind the same gRPC harness: parse, load, decide, append, answer.

Each caller owns one counter aggregate and commands it sequentially, so commands for one
aggregate never race, while different aggregates share the partition writers' group commits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID, uuid4

import grpc
from clinical_testing.counter import COUNTER_EVENTS, Counter, open_or_increment
from clinical_testing.security import in_memory_cipher

from bench.load import (
    LoadResult,
    Phase,
    UnaryCall,
    UnaryHandler,
    command_requests,
    drive,
    parse_command_request,
    unary_endpoint,
)
from clinical_platform.clients.kafka import KafkaConnection
from clinical_platform.eventlog.context import Actor
from clinical_platform.eventlog.errors import EventLogError
from clinical_platform.eventlog.partitioning import PartitionOwnership
from clinical_platform.eventlog.repository import AggregateRepository
from clinical_platform.eventlog.store import EventStore, EventStoreConfig
from clinical_platform.grpc_context import command_context
from clinical_platform.grpc_errors import abort_for

_ACTOR = Actor("bench-clinician", ("clinician",))


def bench_store_config(service: str, bootstrap_servers: str, state_dir: Path) -> EventStoreConfig:
    """One replica owning all six partitions of the bench's own event topic."""
    return EventStoreConfig(
        service=service,
        kafka=KafkaConnection(bootstrap_servers),
        ownership=PartitionOwnership(0, 1, "127.0.0.1:{ordinal}"),
        state_dir=state_dir,
        partitions=6,
    )


@dataclass(frozen=True)
class AppendRun:
    load: LoadResult
    counter_ids: list[UUID]


class CounterCommands:
    """A servicer as the services write them: bytes to a command, errors to status codes."""

    def __init__(self, counters: AggregateRepository[Counter]) -> None:
        self._counters = counters

    async def open_or_increment(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """Open the counter on its first command, increment it afterwards; answer the version."""
        counter_id, request_id = parse_command_request(request)
        provenance = command_context(context, actor=_ACTOR, request_id=request_id)
        try:
            result = await self._counters.execute(
                counter_id, provenance, open_or_increment(counter_id)
            )
        except EventLogError as error:
            await abort_for(context, error)
        return result.version.to_bytes(8, "big")


@asynccontextmanager
async def counter_endpoint(
    config: EventStoreConfig, interceptors: Sequence[grpc.aio.ServerInterceptor] = ()
) -> AsyncIterator[UnaryCall]:
    """Start an event store on `config` and serve counter commands on it."""
    store = EventStore(config)
    await store.start()
    try:
        async with unary_endpoint(counter_commands(store), interceptors) as call:
            yield call
    finally:
        await store.stop()


def counter_commands(store: EventStore) -> UnaryHandler:
    """The counter command handler on a started event store."""
    # Counters are about no patient: the cipher passes their payloads through, as the
    # kernel does for catalogue events, so the fakes never stand in for Vault here.
    counters = AggregateRepository(
        store, COUNTER_EVENTS, source="//clinical/bench",
        cipher=in_memory_cipher(), patient_of=lambda _counter: "",
    )  # fmt: skip
    return CounterCommands(counters).open_or_increment


async def measure_append(
    config: EventStoreConfig, phase: Phase, interceptors: Sequence[grpc.aio.ServerInterceptor] = ()
) -> AppendRun:
    """Commands per second through the full append path, one counter per caller."""
    counter_ids = [uuid4() for _ in range(phase.concurrency)]
    async with counter_endpoint(config, interceptors) as call:
        load = await drive(call, command_requests(counter_ids), phase)
    return AppendRun(load, counter_ids)
