"""Composition root of the audit service: the one place that builds clients and wires them."""

from importlib.metadata import version

from clinical_platform.runtime import serve_grpc, service_runtime
from audit.settings import AuditSettings


async def serve(settings: AuditSettings) -> None:
    """Run the audit service until SIGTERM or SIGINT, then stop gracefully."""
    async with service_runtime(settings, name="audit", version=version("clinical-audit")):
        # Health only, for now: the audit servicers are added here as their issues land.
        await serve_grpc(settings, services=[])
