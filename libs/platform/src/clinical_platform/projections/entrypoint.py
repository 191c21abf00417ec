"""``python -m <service>.entrypoints.projector [--rebuild]``: run or rebuild its read models.

A service process runs its projections itself; this entrypoint runs them apart (joining the same
consumer groups, sharing the partitions) and rebuilds them: ``--rebuild`` drops the read models
and replays their topics from offset 0 with a progress bar. Stop the service's projections first
(scale the service down, or rebuild before it starts): a live runner would interleave newer
events with the replay. A service's module is three lines::

    def main(argv: list[str] | None = None) -> None:
        projector_main(OrdersSettings, service=SERVICE, projections=orders_projections, argv=argv)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import TypeVar

from clinical_platform.clients.kafka import KafkaConnection
from clinical_platform.clients.mongo import build_mongo_client
from clinical_platform.projections.background import event_topic_specs
from clinical_platform.projections.projection import Projection
from clinical_platform.projections.rebuild import RebuildProgress, rebuild_projection
from clinical_platform.projections.runner import ProjectionRunner
from clinical_platform.runtime import service_runtime
from clinical_platform.security.wiring import running_security
from clinical_platform.settings import RecordServiceSettings, load_settings_or_exit

Settings = TypeVar("Settings", bound=RecordServiceSettings)


async def project(
    settings: RecordServiceSettings, projections: Sequence[Projection], *, rebuild: bool,
    on_progress: RebuildProgress | None = None,
) -> int:  # fmt: skip
    """Rebuild (returning the number of events replayed) or run until SIGTERM (returning 0).
    A rebuild draws tqdm bars, or tells ``on_progress`` instead (the `clinical` CLI's bars)."""
    # Payloads are encrypted: the projections decrypt with the service's keys.
    async with running_security(settings) as security:
        mongo = build_mongo_client(settings)
        kafka = KafkaConnection.from_settings(settings)
        database = mongo[settings.mongodb_database]
        try:
            if rebuild:
                replayed = 0
                for projection in projections:
                    replayed += await rebuild_projection(
                        projection, kafka=kafka, database=database, cipher=security.cipher,
                        progress=on_progress is None, on_progress=on_progress,
                    )  # fmt: skip
                return replayed
            runners = asyncio.gather(
                *(
                    ProjectionRunner(
                        projection, kafka=kafka, database=database,
                        replication_factor=settings.kafka_replication_factor,
                        cipher=security.cipher,
                        topic_specs=event_topic_specs(projection.topics, settings),
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


def projector_main(
    settings_type: type[Settings],
    *,
    service: str,
    projections: Callable[[Settings], Sequence[Projection]],
    argv: list[str] | None = None,
) -> None:
    """The command line of ``service``'s projector: run its projections, or ``--rebuild``."""
    parser = argparse.ArgumentParser(description=f"Run or rebuild the {service} read models.")
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="drop the read models and replay their topics from the start",
    )
    args = parser.parse_args(argv)
    settings = load_settings_or_exit(settings_type)
    asyncio.run(_main(settings, service, projections(settings), rebuild=args.rebuild))


async def _main(
    settings: RecordServiceSettings,
    service: str,
    projections: Sequence[Projection],
    *,
    rebuild: bool,
) -> None:
    release = version(f"clinical-{service}")
    async with service_runtime(settings, name=f"{service}-projector", version=release):
        replayed = await project(settings, projections, rebuild=rebuild)
    if rebuild:
        print(f"{service} read models rebuilt from {replayed} events", file=sys.stderr)
