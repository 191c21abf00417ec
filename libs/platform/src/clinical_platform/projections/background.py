"""A service's projections as supervised background tasks: restarted when they fail, stopped
for sure on shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from clinical_platform.background import stop_tasks, supervise
from clinical_platform.projections.projection import Projection
from clinical_platform.projections.runner import ProjectionRunner
from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.settings import BaseServiceSettings


def start_projections(
    projections: Sequence[Projection],
    settings: BaseServiceSettings,
    database: AsyncDatabase[Any],
    cipher: EnvelopeCipher,
) -> list[asyncio.Task[None]]:
    """One supervised task per projection. A projection that fails (Kafka or MongoDB away, a
    bug) starts again with backoff: one that stopped for good would let its read model fall
    silently behind while health still says SERVING."""
    tasks = []
    for projection in projections:
        runner = ProjectionRunner(
            projection,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            database=database,
            replication_factor=settings.kafka_replication_factor,
            cipher=cipher,
        )
        name = f"projection {projection.name}"
        tasks.append(asyncio.create_task(supervise(name, runner.run), name=name))
    return tasks


async def stop_projections(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel the projections' tasks and wait until every one has ended."""
    await stop_tasks(tasks)
