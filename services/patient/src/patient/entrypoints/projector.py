"""``python -m patient.entrypoints.projector [--rebuild]``: run or rebuild the patient read model.

The service process runs the projection itself; this entrypoint runs it apart (joining the same
consumer group) and rebuilds it: ``--rebuild`` drops the patient index, review queue and golden
records and replays the patient topic from offset 0 with a progress bar. Stop the service's
projection first (scale the service down, or rebuild before it starts).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from importlib.metadata import version

from clinical_platform.clients.mongo import build_mongo_client
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.projections import ProjectionRunner, rebuild_projection
from clinical_platform.runtime import service_runtime
from clinical_platform.security.wiring import SecurityKernel, running_security
from clinical_platform.settings import load_settings_or_exit
from patient.bootstrap import SERVICE, patient_projection
from patient.settings import PatientSettings


async def project(settings: PatientSettings, *, rebuild: bool, service: str = SERVICE) -> int:
    """Rebuild (returning the number of events replayed) or run until SIGTERM (returning 0)."""
    # Payloads are encrypted: the projection decrypts with the service's keys.
    async with running_security(settings) as security:
        return await _project(settings, security, rebuild=rebuild, service=service)


async def _project(
    settings: PatientSettings, security: SecurityKernel, *, rebuild: bool, service: str = SERVICE
) -> int:
    projection = patient_projection(service, events_topic(service))
    mongo = build_mongo_client(settings)
    database = mongo[settings.mongodb_database]
    try:
        if rebuild:
            return await rebuild_projection(
                projection,
                bootstrap_servers=settings.kafka_bootstrap_servers,
                database=database,
                cipher=security.cipher,
            )
        runner = asyncio.create_task(
            ProjectionRunner(
                projection,
                bootstrap_servers=settings.kafka_bootstrap_servers,
                database=database,
                replication_factor=settings.kafka_replication_factor,
                cipher=security.cipher,
            ).run()
        )
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(stop_signal, runner.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        return 0
    finally:
        await mongo.close()


async def _main(settings: PatientSettings, rebuild: bool) -> None:
    async with service_runtime(
        settings, name=f"{SERVICE}-projector", version=version("clinical-patient")
    ):
        replayed = await project(settings, rebuild=rebuild)
    if rebuild:
        print(f"patient read model rebuilt from {replayed} events", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run or rebuild the patient read model.")
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="drop the read model and replay the patient topic from the start",
    )
    args = parser.parse_args(argv)
    settings = load_settings_or_exit(PatientSettings)
    asyncio.run(_main(settings, args.rebuild))


if __name__ == "__main__":
    main()
