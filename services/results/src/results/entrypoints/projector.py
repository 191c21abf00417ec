"""``python -m results.entrypoints.projector [--rebuild]``: run or rebuild the results read models.

The service process runs the projections itself; this entrypoint is for running them apart
(joining the same consumer groups, sharing the partitions) and for rebuilds. ``--rebuild`` drops
the read models (results, and the view of order states) and replays their topics from offset 0
with a progress bar; stop the service's projections first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from importlib.metadata import version

from clinical_platform.clients.mongo import build_mongo_client
from clinical_platform.projections import ProjectionRunner, rebuild_projection
from clinical_platform.runtime import service_runtime
from clinical_platform.security.wiring import SecurityKernel, running_security
from clinical_platform.settings import load_settings_or_exit
from results.bootstrap import SERVICE, results_projections
from results.settings import ResultsSettings


async def project(settings: ResultsSettings, *, rebuild: bool) -> int:
    """Rebuild (returning the number of events replayed) or run until SIGTERM (returning 0)."""
    # Payloads are encrypted: the projection decrypts with the service's keys.
    async with running_security(settings) as security:
        return await _project(settings, security, rebuild=rebuild)


async def _project(settings: ResultsSettings, security: SecurityKernel, *, rebuild: bool) -> int:
    projections = results_projections(settings)
    mongo = build_mongo_client(settings)
    database = mongo[settings.mongodb_database]
    try:
        if rebuild:
            replayed = 0
            for projection in projections:
                replayed += await rebuild_projection(
                    projection, bootstrap_servers=settings.kafka_bootstrap_servers,
                    database=database, cipher=security.cipher,
                )  # fmt: skip
            return replayed
        runners = asyncio.gather(
            *(
                ProjectionRunner(
                    projection, bootstrap_servers=settings.kafka_bootstrap_servers,
                    database=database, replication_factor=settings.kafka_replication_factor,
                    cipher=security.cipher,
                ).run()
                for projection in projections
            )
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(stop_signal, runners.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await runners
        return 0
    finally:
        await mongo.close()


async def _main(settings: ResultsSettings, rebuild: bool) -> None:
    name, release = f"{SERVICE}-projector", version("clinical-results")
    async with service_runtime(settings, name=name, version=release):
        replayed = await project(settings, rebuild=rebuild)
    if rebuild:
        print(f"results read models rebuilt from {replayed} events", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run or rebuild the results read models.")
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="drop the read models and replay their topics from the start",
    )
    args = parser.parse_args(argv)
    settings = load_settings_or_exit(ResultsSettings)
    asyncio.run(_main(settings, args.rebuild))


if __name__ == "__main__":
    main()
