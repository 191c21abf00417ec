"""What every service process does around its own wiring: logs, telemetry, serve, stop.

A service's composition root reads::

    async def serve(settings: OrdersSettings) -> None:
        async with service_runtime(settings, name="orders", version=version("clinical-orders")):
            await serve_grpc(settings, services=[...])
"""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import grpc

from clinical_platform.grpc_server import GrpcService, start_grpc_server
from clinical_platform.logs import configure_logging
from clinical_platform.settings import BaseServiceSettings
from clinical_platform.telemetry import Telemetry, configure_telemetry


@asynccontextmanager
async def service_runtime(
    settings: BaseServiceSettings, *, name: str, version: str
) -> AsyncIterator[Telemetry]:
    """Configure JSON logging and telemetry for the process; flush telemetry on the way out."""
    configure_logging(service=name, level=settings.log_level)
    telemetry = configure_telemetry(
        service_name=name,
        service_version=version,
        otlp_endpoint=settings.otel_exporter_otlp_endpoint,
    )
    try:
        yield telemetry
    finally:
        telemetry.shutdown()


async def serve_grpc(
    settings: BaseServiceSettings,
    services: Sequence[GrpcService] = (),
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> None:
    """Serve `services` on the configured host and port until SIGTERM or SIGINT."""
    server = await start_grpc_server(
        host=settings.grpc_host,
        port=settings.grpc_port,
        services=services,
        interceptors=interceptors,
        reflection_enabled=settings.grpc_reflection,
    )
    await server.serve_until_signalled(settings.grpc_grace_seconds)
