"""The metrics endpoint: RED per gRPC method, bounded labels, Prometheus names, loopback."""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from clinical_testing.observability import an_envelope
from clinical_testing.waiting import eventually
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clinical_platform.grpc_server import GrpcServer, start_grpc_server
from clinical_platform.observability.endpoint import MetricsEndpoint, start_metrics_endpoint
from clinical_platform.observability.messaging import publishing
from clinical_platform.observability.metrics import REGISTRY

pytestmark = pytest.mark.unit

HEALTH = "grpc.health.v1.Health"
# Every label any platform metric may carry: each a small, fixed set of values.
BOUNDED_LABELS = {
    "rpc_service", "rpc_method", "rpc_grpc_status_code", "http_route", "http_request_method",
    "http_status_class", "topic", "partition", "outcome", "consumer_group", "operation", "result",
    # clinical_consumer_transient_failures_total: a consumer's name and an error class.
    "consumer", "error",
    # clinical_health_serving: a readiness check's fixed name (vault, event_writer, projections).
    "check",
}  # fmt: skip


@pytest.fixture
async def server() -> AsyncIterator[GrpcServer]:
    started = await start_grpc_server(host="127.0.0.1", port=0)
    yield started
    await started.stop(grace_seconds=0)


@pytest.fixture
def endpoint() -> Iterator[MetricsEndpoint]:
    started = start_metrics_endpoint("127.0.0.1", 0)
    yield started
    started.stop()


def calls(method: str, code: str) -> float:
    labels = {"rpc_service": HEALTH, "rpc_method": method, "rpc_grpc_status_code": code}
    return REGISTRY.get_sample_value("clinical_rpc_server_requests_total", labels) or 0.0


def scrape(endpoint: MetricsEndpoint) -> str:
    url = f"http://127.0.0.1:{endpoint.port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as answer:  # our own endpoint
        return str(answer.read().decode())


async def test_each_rpc_is_counted_by_method_and_status_code_and_timed(
    server: GrpcServer, endpoint: MetricsEndpoint
) -> None:
    ok_before, not_found_before = calls("Check", "OK"), calls("Check", "NOT_FOUND")
    timed = {"rpc_service": HEALTH, "rpc_method": "Check"}
    timed_before = REGISTRY.get_sample_value("clinical_rpc_server_duration_seconds_count", timed)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        await stub.Check(health_pb2.HealthCheckRequest())
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))

    # The server records a call as its handler returns, which may be just after the caller has
    # its answer: wait for the record, never for a fixed time.
    expected_timed = (timed_before or 0) + 2

    def timed_count() -> float | None:
        return REGISTRY.get_sample_value("clinical_rpc_server_duration_seconds_count", timed)

    def recorded() -> bool:
        return timed_count() == expected_timed

    await eventually(recorded, within_s=5)
    assert calls("Check", "OK") == ok_before + 1
    assert calls("Check", "NOT_FOUND") == not_found_before + 1
    assert timed_count() == expected_timed
    assert 'rpc_grpc_status_code="NOT_FOUND"' in scrape(endpoint)


async def test_a_method_the_server_does_not_host_is_not_counted(server: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        unknown = channel.unary_unary("/attacker.Chosen/Name" + "x" * 50)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await unknown(b"")

    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    services = {
        sample.labels.get("rpc_service")
        for metric in REGISTRY.collect()
        for sample in metric.samples
    }
    assert not any(name and name.startswith("attacker") for name in services)


def test_an_appends_latency_is_observed_by_topic_and_outcome() -> None:
    labels = {"topic": "clinical.orders.events.v1", "outcome": "conflict"}
    before = REGISTRY.get_sample_value("clinical_eventlog_append_duration_seconds_count", labels)

    class ConcurrencyError(Exception):
        pass

    with pytest.raises(ConcurrencyError), publishing(labels["topic"], 0, [an_envelope()]):
        raise ConcurrencyError

    after = REGISTRY.get_sample_value("clinical_eventlog_append_duration_seconds_count", labels)
    assert after == (before or 0) + 1


def test_every_metric_is_named_by_prometheus_conventions_with_bounded_labels() -> None:
    for metric in REGISTRY.collect():
        assert metric.name.startswith("clinical_"), metric.name
        assert metric.documentation, metric.name
        for sample in metric.samples:
            if metric.type == "counter" and not sample.name.endswith("_created"):
                assert sample.name.endswith("_total"), sample.name
            unbounded = set(sample.labels) - BOUNDED_LABELS - {"le"}
            assert not unbounded, (sample.name, unbounded)
        if metric.type == "histogram":
            assert metric.name.endswith(("_seconds", "_events")), metric.name


def test_the_endpoint_listens_on_the_address_it_is_given_only(
    endpoint: MetricsEndpoint,
) -> None:
    assert endpoint.server.server_address[0] == "127.0.0.1"
    assert "# TYPE clinical_rpc_server_requests_total counter" in scrape(endpoint)
