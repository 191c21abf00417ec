"""Composition root of the orders service: the one place that builds clients and wires them."""

from importlib.metadata import version

from clinical_platform.runtime import serve_grpc, service_runtime
from orders.settings import OrdersSettings


async def serve(settings: OrdersSettings) -> None:
    """Run the orders service until SIGTERM or SIGINT, then stop gracefully."""
    async with service_runtime(settings, name="orders", version=version("clinical-orders")):
        # Health only, for now: the orders servicers are added here as their issues land.
        await serve_grpc(settings, services=[])
