"""Composition root of the patient service: the one place that builds clients and wires them."""

from importlib.metadata import version

from clinical_platform.runtime import serve_grpc, service_runtime
from patient.settings import PatientSettings


async def serve(settings: PatientSettings) -> None:
    """Run the patient service until SIGTERM or SIGINT, then stop gracefully."""
    async with service_runtime(settings, name="patient", version=version("clinical-patient")):
        # Health only, for now: the patient servicers are added here as their issues land.
        await serve_grpc(settings, services=[])
