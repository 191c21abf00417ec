"""Composition root of the notify service: the one place that builds clients and wires them."""

from importlib.metadata import version

from clinical_platform.runtime import serve_grpc, service_runtime
from notify.settings import NotifySettings


async def serve(settings: NotifySettings) -> None:
    """Run the notify service until SIGTERM or SIGINT, then stop gracefully."""
    async with service_runtime(settings, name="notify", version=version("clinical-notify")):
        # Health only, for now: the notify servicers are added here as their issues land.
        await serve_grpc(settings, services=[])
