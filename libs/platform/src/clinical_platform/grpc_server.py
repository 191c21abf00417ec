"""The one grpc.aio server bootstrap: health, optional reflection, graceful stop on SIGTERM.

A service hands over its servicers as `GrpcService` values; the kernel binds, reports health and
runs the shutdown sequence Kubernetes expects: NOT_SERVING first, then stop with a grace period.
"""

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from clinical_platform.grpc_requests import RequestGuard
from clinical_platform.observability.rpc import RpcTelemetry

logger = logging.getLogger(__name__)

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class GrpcService:
    """A servicer to host: its full proto service name and how to add it to a server.

    ``GrpcService("clinical.orders.v1.OrderService",
    partial(orders_pb2_grpc.add_OrderServiceServicer_to_server, servicer))``
    """

    name: str
    register: Callable[[grpc.aio.Server], None]


class GrpcServer:
    """A started grpc.aio server together with the health servicer that reports on it."""

    def __init__(
        self,
        server: grpc.aio.Server,
        health_servicer: health.aio.HealthServicer,
        port: int,
        service_names: Sequence[str] = (),
    ) -> None:
        self._server = server
        self._health = health_servicer
        self._port = port
        self._service_names = tuple(service_names)

    @property
    def port(self) -> int:
        """The port actually bound, which differs from the requested one when that was 0."""
        return self._port

    async def set_serving(self, serving: bool) -> None:
        """Report SERVING or NOT_SERVING for the whole server ("") and each hosted service.

        Ignored once stopping has begun: a server on its way out stays NOT_SERVING.
        """
        status = _SERVING if serving else _NOT_SERVING
        for name in ("", *self._service_names):
            await self._health.set(name, status)

    async def stop(self, grace_seconds: float) -> None:
        """Report NOT_SERVING on every health entry, then stop, giving in-flight RPCs grace."""
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace_seconds)

    async def serve_until(self, shutdown: asyncio.Event, grace_seconds: float) -> None:
        """Serve until `shutdown` is set, then stop gracefully."""
        await shutdown.wait()
        logger.info("gRPC server stopping", extra={"grace_seconds": grace_seconds})
        await self.stop(grace_seconds)
        logger.info("gRPC server stopped")

    async def serve_until_signalled(self, grace_seconds: float) -> None:
        """Serve until SIGTERM or SIGINT arrives, then stop gracefully."""
        shutdown = asyncio.Event()
        loop = asyncio.get_running_loop()
        stop_signals = (signal.SIGTERM, signal.SIGINT)
        for stop_signal in stop_signals:
            loop.add_signal_handler(stop_signal, shutdown.set)
        try:
            await self.serve_until(shutdown, grace_seconds)
        finally:
            for stop_signal in stop_signals:
                loop.remove_signal_handler(stop_signal)


async def start_grpc_server(
    *,
    host: str,
    port: int,
    services: Sequence[GrpcService] = (),
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    reflection_enabled: bool = False,
    maximum_concurrent_rpcs: int | None = None,
    credentials: grpc.ServerCredentials | None = None,
) -> GrpcServer:
    """Build, bind and start a server hosting `services`, health and (optionally) reflection.

    Health answers SERVING for the whole server ("") and for each service name. Reflection is
    off unless asked for: it hands a map of the API to anyone who can reach the port. Every
    request passes the `RequestGuard` (innermost, so the other interceptors see its answers):
    bytes that do not parse and requests over their declared limits are INVALID_ARGUMENT.
    Beyond ``maximum_concurrent_rpcs`` calls in progress (streams included), grpc answers
    RESOURCE_EXHAUSTED at once rather than queueing without bound. With ``credentials``
    (`grpc_tls.TlsFiles.server_credentials`) it serves TLS only, else plaintext.
    """
    server = grpc.aio.server(
        # RpcTelemetry outermost: it traces and counts the other interceptors' refusals too.
        interceptors=[RpcTelemetry(), *interceptors, RequestGuard()],
        # Without this, Linux lets a second process bind the same port and steal half the calls.
        options=[("grpc.so_reuseport", 0)],
        maximum_concurrent_rpcs=maximum_concurrent_rpcs,
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in services:
        service.register(server)
    if reflection_enabled:
        exposed = [service.name for service in services]
        reflection.enable_server_reflection(
            [*exposed, health.SERVICE_NAME, reflection.SERVICE_NAME], server
        )

    for service in services:
        await health_servicer.set(service.name, _SERVING)
    bound_port = _bind(server, _address(host, port), credentials)
    await server.start()
    logger.info("gRPC server listening", extra={"host": host, "port": bound_port})
    return GrpcServer(server, health_servicer, bound_port, [service.name for service in services])


def _bind(server: grpc.aio.Server, address: str, credentials: grpc.ServerCredentials | None) -> int:
    # Plaintext only when no TLS is configured: local runs on loopback and tests (production
    # mode refuses to start without TLS, clinical_platform.production).
    if credentials is None:
        port: int = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    return port


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
