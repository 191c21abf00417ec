"""The one gRPC server bootstrap: health, opt-in reflection, NOT_SERVING before it stops."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
import pytest
from clinical_testing.waiting import eventually
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from clinical_platform.grpc_server import GrpcServer, GrpcService, start_grpc_server

pytestmark = pytest.mark.unit

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
MAX_CONCURRENT_RPCS = 2
BLOCKING_SERVICE = "clinical.test.v1.BlockingService"


@dataclass
class Started:
    server: GrpcServer
    channel: grpc.aio.Channel


StartServer = Callable[..., Awaitable[Started]]


@pytest.fixture
async def start_server(sample_service: GrpcService) -> AsyncIterator[StartServer]:
    """Start servers hosting the sample service on 127.0.0.1:0; stop them after the test."""
    started: list[Started] = []

    async def start(*, reflection: bool = False, services: Sequence[GrpcService] = ()) -> Started:
        server = await start_grpc_server(
            host="127.0.0.1", port=0, services=[sample_service, *services],
            reflection_enabled=reflection, maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
        )  # fmt: skip
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


async def test_set_serving_flips_health_for_the_server_and_each_hosted_service(
    start_server: StartServer, sample_service: GrpcService
) -> None:
    started = await start_server()

    await started.server.set_serving(False)
    assert await _check(started.channel) == NOT_SERVING
    assert await _check(started.channel, sample_service.name) == NOT_SERVING

    await started.server.set_serving(True)
    assert await _check(started.channel) == SERVING
    assert await _check(started.channel, sample_service.name) == SERVING


async def test_calls_beyond_maximum_concurrent_rpcs_are_resource_exhausted_at_once(
    start_server: StartServer,
) -> None:
    release = asyncio.Event()
    entered: list[None] = []

    async def block(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        entered.append(None)
        await release.wait()
        return request

    def register(server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(block)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(BLOCKING_SERVICE, {"Block": handler}),)
        )

    started = await start_server(services=[GrpcService(BLOCKING_SERVICE, register)])
    blocking = started.channel.unary_unary(f"/{BLOCKING_SERVICE}/Block")
    held = [
        asyncio.ensure_future(blocking(b"held", timeout=30)) for _ in range(MAX_CONCURRENT_RPCS)
    ]
    await eventually(lambda: len(entered) == MAX_CONCURRENT_RPCS)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await blocking(b"one too many", timeout=30)

    release.set()
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await asyncio.gather(*held) == [b"held"] * MAX_CONCURRENT_RPCS
