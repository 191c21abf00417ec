"""What every service process does around its own wiring: logs, telemetry, serve, stop.

A service's composition root reads::

    async def serve(settings: OrdersSettings) -> None:
        async with service_runtime(settings, name="orders", version=version("clinical-orders")):
            await serve_grpc(settings, services=[...])
"""

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace

import grpc

from clinical_platform.clients.kafka import KafkaConnection
from clinical_platform.eventlog.partitioning import PartitionOwnership
from clinical_platform.eventlog.store import EventStoreConfig
from clinical_platform.grpc_server import GrpcServer, GrpcService, start_grpc_server
from clinical_platform.grpc_tls import TlsFiles
from clinical_platform.health import HealthCheck, HealthMonitor
from clinical_platform.jwks import RemoteKeySet
from clinical_platform.logs import configure_logging
from clinical_platform.observability.endpoint import start_metrics_endpoint
from clinical_platform.production import refuse_insecure_settings_or_exit
from clinical_platform.settings import BaseServiceSettings
from clinical_platform.telemetry import Telemetry, configure_telemetry
from clinical_platform.tokens import TokenVerifier

logger = logging.getLogger(__name__)


@asynccontextmanager
async def service_runtime(
    settings: BaseServiceSettings, *, name: str, version: str
) -> AsyncIterator[Telemetry]:
    """Configure JSON logging and telemetry for the process, serve its metrics (when a metrics
    port is set); flush telemetry on the way out. In production mode, first exit 2 on any
    insecure setting (`clinical_platform.production`)."""
    configure_logging(service=name, level=settings.log_level)
    # Blocking (one Vault lookup at most) is fine here: nothing else runs yet.
    refuse_insecure_settings_or_exit(settings)
    telemetry = configure_telemetry(
        service_name=name,
        service_version=version,
        otlp_endpoint=settings.otel_exporter_otlp_endpoint,
        traces_exporter=settings.otel_traces_exporter,
    )
    metrics = (
        None
        if settings.metrics_port is None
        else start_metrics_endpoint(settings.metrics_host, settings.metrics_port)
    )
    try:
        yield telemetry
    finally:
        if metrics is not None:
            metrics.stop()
        telemetry.shutdown()


async def serve_grpc(
    settings: BaseServiceSettings,
    services: Sequence[GrpcService] = (),
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    health_checks: Sequence[HealthCheck] = (),
) -> None:
    """Serve `services` on the configured host and port until SIGTERM or SIGINT; health is
    NOT_SERVING while any of ``health_checks`` fails."""
    async with grpc_serving(settings, services, interceptors, health_checks) as server:
        await server.serve_until_signalled(settings.grpc_grace_seconds)


@asynccontextmanager
async def grpc_serving(
    settings: BaseServiceSettings,
    services: Sequence[GrpcService] = (),
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    health_checks: Sequence[HealthCheck] = (),
) -> AsyncIterator[GrpcServer]:
    """The server `serve_grpc` runs, with its health monitor, until the block ends (tests)."""
    tls = TlsFiles.from_settings(settings)
    server = await start_grpc_server(
        host=settings.grpc_host,
        port=settings.grpc_port,
        services=services,
        interceptors=interceptors,
        reflection_enabled=settings.grpc_reflection,
        credentials=None if tls is None else tls.server_credentials(),
        maximum_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
    )
    monitor = HealthMonitor(
        health_checks, server.set_serving, interval_s=settings.health_check_interval_seconds
    )
    try:
        await monitor.start()
        yield server
    finally:
        await monitor.stop()
        await server.stop(settings.grpc_grace_seconds)


def event_store_config(settings: BaseServiceSettings, *, service: str) -> EventStoreConfig:
    """The event log layout of a service replica, from its settings."""
    address = settings.replica_address_template.replace("{port}", str(settings.grpc_port))
    return EventStoreConfig(
        service=service,
        kafka=KafkaConnection.from_settings(settings),
        ownership=PartitionOwnership(settings.replica_ordinal, settings.replica_count, address),
        state_dir=settings.state_dir,
        partitions=settings.event_partitions,
        replication_factor=settings.kafka_replication_factor,
        min_insync_replicas=settings.kafka_min_insync_replicas,
        max_queued_appends=settings.event_writer_max_queued_appends,
    )


# An unknown kid reads the token service's key set at most this often; a set this old is read
# again before use, so a retired key stops being trusted.
JWKS_MIN_REFRESH_S = 30.0
JWKS_MAX_AGE_S = 300.0


def token_verifier(settings: BaseServiceSettings) -> TokenVerifier:
    """Trust the configured JWT keys for this service's audience; with none, refuse all."""
    if not settings.jwt_public_keys.strip() and not settings.jwt_jwks_url:
        logger.warning("JWT_PUBLIC_KEYS and JWT_JWKS_URL are empty: every RPC except health "
                       "will be refused")  # fmt: skip
    key_set = None
    if settings.jwt_jwks_url:
        key_set = RemoteKeySet(
            settings.jwt_jwks_url, min_refresh_interval_s=JWKS_MIN_REFRESH_S,
            max_age_s=JWKS_MAX_AGE_S,
        )  # fmt: skip
    verifier = TokenVerifier.from_pem(
        settings.jwt_public_keys, issuer=settings.jwt_issuer, audience=settings.token_audience,
        max_lifetime_s=settings.jwt_max_lifetime_seconds,
    )  # fmt: skip
    return replace(verifier, key_set=key_set)
