"""A partition writer that cannot keep up refuses more appends at once, on the real broker:
RESOURCE_EXHAUSTED with a retry delay for the caller, and nothing of the refused command in the
log."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.eventlog import make_envelope, read_topic
from clinical_testing.plugin import TopicFactory, unique_name
from clinical_testing.waiting import eventually
from google.rpc import error_details_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status  # type: ignore[import-untyped]

from clinical_platform.eventlog.appends import PendingAppend
from clinical_platform.eventlog.local_store import PartitionStore
from clinical_platform.eventlog.writer import PartitionWriter, WriterConfig, transactional_producer
from clinical_platform.grpc_errors import failures_as_status
from clinical_platform.grpc_server import GrpcService, start_grpc_server

pytestmark = pytest.mark.integration

SERVICE = "clinical.test.v1.AppendService"


class CommitGate:
    """Holds every commit of the writer's producer until opened: a broker slower than callers."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.opened = asyncio.Event()

    def producer(self, config: WriterConfig) -> AIOKafkaProducer:
        producer = transactional_producer(config)
        commit = producer.commit_transaction

        async def gated_commit() -> None:
            self.waiting.set()
            await self.opened.wait()
            await commit()

        producer.commit_transaction = gated_commit
        return producer


def _append(request_id: str) -> PendingAppend:
    aggregate_id = str(uuid.uuid4())
    return PendingAppend(aggregate_id, 0, request_id, [make_envelope(aggregate_id, 1, request_id)])


@pytest.fixture
async def gated_writer(
    servers: ServerEndpoints, kafka_topic: TopicFactory, tmp_path: Path
) -> AsyncIterator[tuple[PartitionWriter, CommitGate, str]]:
    """A writer with room for one waiting append, whose commits wait for the test."""
    topic = await kafka_topic()
    gate = CommitGate()
    config = WriterConfig(
        servers.kafka, topic, 0, unique_name("test-writer-"), commit_timeout_s=30, max_queued=1
    )
    store = PartitionStore(tmp_path / "p0.sqlite", topic, 0)
    writer = PartitionWriter(config, store, gate.producer)
    await writer.start()
    try:
        yield writer, gate, topic
    finally:
        gate.opened.set()
        await writer.stop()
        store.close()


async def test_a_command_beyond_the_writer_queue_is_resource_exhausted_and_appends_nothing(
    servers: ServerEndpoints, gated_writer: tuple[PartitionWriter, CommitGate, str]
) -> None:
    writer, gate, topic = gated_writer

    async def append(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async with failures_as_status(context, {}):
            await writer.append(_append(request.decode()))
        return b"appended"

    def register(server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(append)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"Append": handler}),)
        )

    server = await start_grpc_server(
        host="127.0.0.1", port=0, services=[GrpcService(SERVICE, register)]
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            call = channel.unary_unary(f"/{SERVICE}/Append")
            committing = asyncio.ensure_future(call(b"req-committing", timeout=60))
            assert await eventually(gate.waiting.is_set)  # its commit now waits for the broker
            # One step of its task puts it in the queue, which it fills.
            queued = asyncio.ensure_future(writer.append(_append("req-queued")))
            await asyncio.sleep(0)

            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call(b"req-refused", timeout=60)

            gate.opened.set()
            assert await committing == b"appended"
            assert (await queued).version == 1
    finally:
        await server.stop(grace_seconds=0)

    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry_info = error_details_pb2.RetryInfo()
    assert rpc_status.from_call(refused.value).details[0].Unpack(retry_info)
    assert retry_info.retry_delay.ToTimedelta().total_seconds() > 0
    on_topic = await read_topic(servers.kafka_bootstrap_servers, topic)
    assert sorted(e.request_id for e in on_topic) == ["req-committing", "req-queued"]
