"""Telemetry: server spans for gRPC calls, exporters chosen by the caller, clean shutdown."""

from collections.abc import Iterator

import grpc
import pytest
from clinical_testing.waiting import eventually
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from clinical_platform.grpc_server import start_grpc_server
from clinical_platform.telemetry import Telemetry, configure_telemetry

pytestmark = pytest.mark.unit


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def telemetry(spans: InMemorySpanExporter) -> Iterator[Telemetry]:
    configured = configure_telemetry(
        service_name="sample",
        service_version="0.0.0",
        span_exporters=[spans],
        install_globals=False,
    )
    yield configured
    configured.shutdown()


async def _server_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    # The server span ends just after the response is sent, so it may trail the client by a hair.
    return await eventually(
        lambda: [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER], within_s=1
    )


async def test_health_rpc_is_recorded_as_a_server_span_of_the_service(
    telemetry: Telemetry, spans: InMemorySpanExporter
) -> None:
    server = await start_grpc_server(host="127.0.0.1", port=0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    finally:
        await server.stop(grace_seconds=0)

    [span] = await _server_spans(spans)
    assert span.name == "/grpc.health.v1.Health/Check"
    assert span.resource.attributes["service.name"] == "sample"
    assert span.resource.attributes["service.version"] == "0.0.0"
    assert span.resource.attributes["service.instance.id"]


def test_configuring_again_while_active_returns_the_same_handle(telemetry: Telemetry) -> None:
    again = configure_telemetry(service_name="other", service_version="9", install_globals=False)

    assert again is telemetry


def test_shutdown_removes_grpc_instrumentation(spans: InMemorySpanExporter) -> None:
    original_channel_factory = grpc.aio.insecure_channel
    configured = configure_telemetry(
        service_name="sample",
        service_version="0.0.0",
        span_exporters=[spans],
        install_globals=False,
    )
    assert grpc.aio.insecure_channel is not original_channel_factory

    configured.shutdown()

    assert grpc.aio.insecure_channel is original_channel_factory
