"""Composition root of the results service: the one place that builds clients and wires them."""

from importlib.metadata import version

from clinical_platform.runtime import serve_grpc, service_runtime
from results.settings import ResultsSettings


async def serve(settings: ResultsSettings) -> None:
    """Run the results service until SIGTERM or SIGINT, then stop gracefully."""
    async with service_runtime(settings, name="results", version=version("clinical-results")):
        # Health only, for now: the results servicers are added here as their issues land.
        await serve_grpc(settings, services=[])
