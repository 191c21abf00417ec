"""The one gRPC server bootstrap: health, opt-in reflection, NOT_SERVING before it stops."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from clinical_platform.grpc_server import GrpcServer, GrpcService, start_grpc_server

pytestmark = pytest.mark.unit

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class Started:
    server: GrpcServer
    channel: grpc.aio.Channel


StartServer = Callable[..., Awaitable[Started]]


@pytest.fixture
async def start_server(sample_service: GrpcService) -> AsyncIterator[StartServer]:
    """Start servers hosting the sample service on 127.0.0.1:0; stop them after the test."""
    started: list[Started] = []

    async def start(*, reflection: bool = False) -> Started:
        server = await start_grpc_server(
            host="127.0.0.1", port=0, services=[sample_service], reflection_enabled=reflection
        )
        started.append(Started(server, grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")))
        return started[-1]

    yield start
    for each in started:
        await each.channel.close()
        await each.server.stop(grace_seconds=0)


async def _check(channel: grpc.aio.Channel, service: str = "") -> int:
    response = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=5
    )
    return int(response.status)


async def _listed_services(channel: grpc.aio.Channel) -> set[str]:
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
        iter([request]), timeout=5
    )
    response = await stream.read()
    return {service.name for service in response.list_services_response.service}


async def test_port_zero_binds_a_free_port_and_reports_it(start_server: StartServer) -> None:
    started = await start_server()

    assert started.server.port > 0


async def test_health_answers_serving_for_the_server_and_each_hosted_service(
    start_server: StartServer, sample_service: GrpcService
) -> None:
    started = await start_server()

    assert await _check(started.channel) == SERVING
    assert await _check(started.channel, sample_service.name) == SERVING


async def test_reflection_is_unimplemented_unless_enabled(start_server: StartServer) -> None:
    started = await start_server()

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _listed_services(started.channel)
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_reflection_lists_hosted_services_when_enabled(
    start_server: StartServer, sample_service: GrpcService
) -> None:
    started = await start_server(reflection=True)

    listed = await _listed_services(started.channel)

    assert {sample_service.name, "grpc.health.v1.Health"} <= listed


async def test_health_turns_not_serving_before_the_server_goes_away(
    start_server: StartServer,
) -> None:
    started = await start_server()
    watch = health_pb2_grpc.HealthStub(started.channel).Watch(health_pb2.HealthCheckRequest())
    assert (await watch.read()).status == SERVING
    shutdown = asyncio.Event()
    serving = asyncio.create_task(started.server.serve_until(shutdown, grace_seconds=0.2))

    shutdown.set()

    assert (await asyncio.wait_for(watch.read(), timeout=5)).status == NOT_SERVING
    await asyncio.wait_for(serving, timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await _check(started.channel)
    assert gone.value.code() == grpc.StatusCode.UNAVAILABLE
