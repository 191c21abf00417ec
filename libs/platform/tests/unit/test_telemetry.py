"""Telemetry: server spans for gRPC calls, exporters chosen by the caller, clean shutdown."""

import asyncio
import contextlib
from collections.abc import Iterator

import grpc
import pytest
from clinical_testing.waiting import eventually
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from clinical_platform.grpc_server import GrpcService, start_grpc_server
from clinical_platform.observability.metrics import RPC_REQUESTS
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


SAMPLE_SERVICE = "clinical.sample.v1.Sample"


async def _call_sample(behaviour: str, calls: int = 1) -> None:
    """Calls to a sample method that answers, refuses (a caller's mistake) or fails."""

    async def answer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if behaviour == "refuse":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a caller's mistake")
        if behaviour == "fail":
            raise RuntimeError("a bug of ours")
        return request

    def register(server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(answer)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SAMPLE_SERVICE, {"Do": handler}),)
        )

    server = await start_grpc_server(
        host="127.0.0.1", port=0, services=[GrpcService(SAMPLE_SERVICE, register)]
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            for _ in range(calls):
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await channel.unary_unary(f"/{SAMPLE_SERVICE}/Do")(b"x")
    finally:
        await server.stop(grace_seconds=0)


async def test_a_server_span_continues_the_callers_trace_with_rpc_attributes(
    telemetry: Telemetry, spans: InMemorySpanExporter
) -> None:
    caller = telemetry.tracer_provider.get_tracer("caller")
    with caller.start_as_current_span("caller's work") as work:
        await _call_sample("answer")  # the client instrumentation sends traceparent

    [span] = await _server_spans(spans)
    [client] = [s for s in spans.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert span.name == f"/{SAMPLE_SERVICE}/Do"
    assert span.context.trace_id == work.get_span_context().trace_id
    assert span.parent is not None
    assert span.parent.span_id == client.context.span_id
    assert dict(span.attributes or {}) == {
        "rpc.system": "grpc", "rpc.service": SAMPLE_SERVICE, "rpc.method": "Do",
        "rpc.grpc.status_code": grpc.StatusCode.OK.value[0],
    }  # fmt: skip


async def test_each_call_of_a_method_gets_its_own_span_and_count(
    telemetry: Telemetry, spans: InMemorySpanExporter
) -> None:
    # The interceptors wrap a method's handler once, on its first call; what they record
    # is still per call.
    counted = RPC_REQUESTS.labels(SAMPLE_SERVICE, "Do", "OK")
    before = counted._value.get()

    await _call_sample("answer", calls=3)

    def three_server_spans() -> list[ReadableSpan]:
        found = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
        return found if len(found) == 3 else []

    server_spans = await eventually(three_server_spans, within_s=1)
    assert len({span.context.span_id for span in server_spans}) == 3
    assert counted._value.get() - before == 3


async def test_a_callers_mistake_is_not_an_error_of_the_span_and_a_fault_of_ours_is(
    telemetry: Telemetry, spans: InMemorySpanExporter
) -> None:
    await _call_sample("refuse")
    await _call_sample("fail")

    def server_spans() -> list[ReadableSpan]:
        found = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
        return found if len(found) == 2 else []

    refused, failed = await eventually(server_spans, within_s=1)
    assert refused.attributes is not None
    assert failed.attributes is not None
    assert refused.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert refused.status.status_code == StatusCode.UNSET
    assert failed.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNKNOWN.value[0]
    assert failed.status.status_code == StatusCode.ERROR
    # The exception's text stays out of the span (it may name a patient).
    assert not failed.events
    assert failed.status.description == "UNKNOWN"


async def test_excluded_services_are_not_traced(
    telemetry: Telemetry, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "OTEL_PYTHON_GRPC_EXCLUDED_SERVICES", f"grpc.health.v1.Health, {SAMPLE_SERVICE}"
    )

    await _call_sample("answer")

    await asyncio.sleep(0.1)
    assert not [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
