"""Telemetry of a test (spans kept in memory, the process-wide providers left alone), and for
the e2e tests the local Prometheus and Zipkin and services exporting to them."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from aiokafka.errors import KafkaError
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.isolated import SERVER_ENV
from clinical_testing.keycloak import Keycloak, running_keycloak
from clinical_testing.observability import (
    TOPIC,
    Clinic,
    ObserveStack,
    Publish,
    Record,
    an_envelope,
)
from clinical_testing.plugin import unique_name
from clinical_testing.service_process import ServiceProcess, free_tcp_port
from clinical_testing.tokens import TokenMint
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pymongo import AsyncMongoClient

from clinical.events.v1 import envelope_pb2
from clinical.notify.v1.notify_pb2_grpc import NotifyServiceStub
from clinical.orders.v1.orders_pb2_grpc import OrderServiceStub
from clinical.patient.v1.patient_pb2_grpc import PatientServiceStub
from clinical_platform.clients.kafka import build_admin
from clinical_platform.eventlog.envelope import cloudevents_headers
from clinical_platform.eventlog.topics import ensure_topic, event_topic_spec, events_topic
from clinical_platform.observability.messaging import publishing
from clinical_platform.projections import dead_letter_topic
from clinical_platform.telemetry import configure_telemetry
from gateway.adapters.internal_tokens import InternalTokenIssuer, rotate_key_file
from localinfra import prometheus, zipkin
from localinfra.config import InfraConfig


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    telemetry = configure_telemetry(
        service_name="observed",
        service_version="0.0.0",
        span_exporters=[exporter],
        install_globals=False,
    )
    yield exporter
    telemetry.shutdown()


@pytest.fixture
def publish(spans: InMemorySpanExporter) -> Publish:
    """``publish(offset=7)``: an envelope appended under a producer span, as its record."""

    def published(offset: int = 7) -> tuple[Record, envelope_pb2.Envelope]:
        envelope = an_envelope()
        with publishing(TOPIC, 2, [envelope]):
            pass
        headers = cloudevents_headers(envelope)
        return Record(TOPIC, 2, offset, 1_700_000_000_000, headers), envelope

    return published


@pytest.fixture(scope="module")
def stack() -> Iterator[ObserveStack]:
    """The local Prometheus and Zipkin, started as `make run` starts them unless running."""
    config = InfraConfig.from_env()
    started = [server for server in (prometheus, zipkin) if server.start(config)]
    yield ObserveStack(prometheus.address(config), zipkin.address(config))
    if not os.environ.get("CLINICAL_KEEP_INFRA"):
        for server in started:
            server.process(config).stop()


@pytest.fixture(scope="module")
def keycloak() -> Iterator[Keycloak]:
    with running_keycloak() as server:
        yield server


@pytest.fixture(scope="module")
async def clinic(
    servers: ServerEndpoints,
    token_mint: TokenMint,
    stack: ObserveStack,
    keycloak: Keycloak,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Clinic]:
    """patient, orders and notify as processes on their own topics, databases and state, and
    the gateway in front of them trusting Keycloak; all export spans to the stack's Zipkin and
    are scraped by its Prometheus."""
    tmp = tmp_path_factory.mktemp("observed")
    suffix = unique_name("")
    logs = {name: f"{name}-{suffix}" for name in ("patient", "orders", "results", "notify")}
    topics = {name: events_topic(log) for name, log in logs.items()}
    database, access_topic = f"observed_{suffix}".replace("-", "_"), f"observed.access.{suffix}"
    names = ("patient", "orders", "notify", "gateway")
    metrics_ports = {name: free_tcp_port() for name in names}
    ports = {name: free_tcp_port() for name in names}
    gateway_keys = tmp / "gateway-keys.pem"
    rotate_key_file(gateway_keys)
    gateway_pem = InternalTokenIssuer.from_pem_file(gateway_keys, issuer="", ttl_s=60).public_pem()
    admin = build_admin(servers.kafka)
    await admin.start()
    for log in logs.values():
        spec = event_topic_spec(log, partitions=3, replication_factor=1, min_insync_replicas=1)
        await ensure_topic(admin, spec)
    inherited = {k: v for k, v in os.environ.items() if k not in SERVER_ENV}
    shared = inherited | servers.as_env() | {
        # The test's own tokens and the gateway's (calls it forwards).
        "JWT_PUBLIC_KEYS": token_mint.public_pem + gateway_pem,
        "ACCESS_AUDIT_TOPIC": access_topic, "ACCESS_AUDIT_PARTITIONS": "1",
        "OTEL_TRACES_EXPORTER": "zipkin",
        "OTEL_EXPORTER_ZIPKIN_ENDPOINT": f"{stack.zipkin}/api/v2/spans",
        # Spans leave every 200 ms rather than every 5 s: the test waits for them.
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }  # fmt: skip
    own = {
        "patient": {},
        "orders": {"RESULTS_EVENTS_TOPIC": topics["results"]},
        "notify": {
            "ORDERS_EVENTS_TOPIC": topics["orders"], "RESULTS_EVENTS_TOPIC": topics["results"],
            "WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOW_NETWORKS": "127.0.0.1/32",
            "SECRET_KEY": f"observed-{suffix}",
            "POLL_INTERVAL_S": "0.2",
        },
    }  # fmt: skip
    processes = []
    for name, settings in own.items():
        prefix, port = name.upper(), ports[name]
        env = shared | {
            f"{prefix}_{key}": value
            for key, value in settings.items() | {
                "GRPC_PORT": str(port), "STATE_DIR": str(tmp / name),
                "METRICS_PORT": str(metrics_ports[name]), "EVENT_LOG_NAME": logs[name],
                "MONGODB_DATABASE": f"{database}_{name}", "EVENT_PARTITIONS": "3",
                "PATIENT_EVENTS_TOPIC": topics["patient"],
            }.items()
        }  # fmt: skip
        processes.append(ServiceProcess(name, port, env, tmp / f"{name}.log"))
    http_port = free_tcp_port()
    gateway = shared | {
        "GATEWAY_GRPC_PORT": str(ports["gateway"]), "GATEWAY_HTTP_PORT": str(http_port),
        "GATEWAY_METRICS_PORT": str(metrics_ports["gateway"]),
        "GATEWAY_OIDC_ISSUER": keycloak.issuer, "GATEWAY_SIGNING_KEYS_FILE": str(gateway_keys),
        "GATEWAY_PATIENT_ADDRESS": f"127.0.0.1:{ports['patient']}",
        "GATEWAY_ORDERS_ADDRESS": f"127.0.0.1:{ports['orders']}",
    }  # fmt: skip
    processes.append(ServiceProcess("gateway", ports["gateway"], gateway, tmp / "gateway.log"))
    config = InfraConfig.from_env()
    prometheus.register_targets(config, f"test-{suffix}", metrics_ports)
    try:
        await asyncio.gather(*(process.wait_serving(within_s=90) for process in processes))
        channels = [grpc.aio.insecure_channel(process.address) for process in processes[:3]]
        async with channels[0], channels[1], channels[2]:
            yield Clinic(
                PatientServiceStub(channels[0]), OrderServiceStub(channels[1]),
                NotifyServiceStub(channels[2]), f"http://127.0.0.1:{http_port}",
                topics["orders"], metrics_ports, processes,
            )  # fmt: skip
    finally:
        prometheus.unregister_targets(config, f"test-{suffix}")
        for process in processes:
            process.kill()
        for topic in [*topics.values(), *map(dead_letter_topic, topics.values()), access_topic]:
            with contextlib.suppress(KafkaError):
                await admin.delete_topics([topic])
        await admin.close()
        mongo: AsyncMongoClient[Any] = AsyncMongoClient(servers.mongodb_url)
        for name in own:
            await mongo.drop_database(f"{database}_{name}")
        await mongo.close()
