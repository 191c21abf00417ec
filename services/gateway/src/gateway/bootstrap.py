"""Composition root of the gateway service: the one place that builds clients and wires them."""

from importlib.metadata import version

from clinical_platform.runtime import serve_grpc, service_runtime
from gateway.settings import GatewaySettings


async def serve(settings: GatewaySettings) -> None:
    """Run the gateway service until SIGTERM or SIGINT, then stop gracefully."""
    async with service_runtime(settings, name="gateway", version=version("clinical-gateway")):
        # Health only, for now: the gateway servicers are added here as their issues land.
        await serve_grpc(settings, services=[])
