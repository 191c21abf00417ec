"""A service's projections as supervised background tasks: restarted when they fail, stopped
for sure on shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from clinical_platform.background import CrashLoops, supervise
from clinical_platform.clients.kafka import KafkaConnection
from clinical_platform.eventlog.topics import TopicSpec, event_topic_spec, service_of
from clinical_platform.projections.projection import Projection
from clinical_platform.projections.runner import ProjectionRunner
from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.settings import BaseServiceSettings


def start_projections(
    projections: Sequence[Projection],
    settings: BaseServiceSettings,
    database: AsyncDatabase[Any],
    cipher: EnvelopeCipher,
    crash_loops: CrashLoops | None = None,
) -> list[asyncio.Task[None]]:
    """One supervised task per projection. A projection that fails (Kafka or MongoDB away, a
    bug) starts again with backoff: one that stopped for good would let its read model fall
    silently behind while health still says SERVING. ``crash_loops`` watches each one."""
    tasks = []
    for projection in projections:
        runner = ProjectionRunner(
            projection,
            kafka=KafkaConnection.from_settings(settings),
            database=database,
            replication_factor=settings.kafka_replication_factor,
            cipher=cipher,
            topic_specs=event_topic_specs(projection.topics, settings),
        )
        name = f"projection {projection.name}"
        crash_loop = crash_loops.watch(projection.name) if crash_loops is not None else None
        supervised = supervise(name, runner.run, crash_loop=crash_loop)
        tasks.append(asyncio.create_task(supervised, name=name))
    return tasks


def event_topic_specs(topics: Iterable[str], settings: BaseServiceSettings) -> list[TopicSpec]:
    """The specs of the event topics among ``topics``, as their writers create them."""
    return [
        event_topic_spec(
            service,
            partitions=settings.event_partitions,
            replication_factor=settings.kafka_replication_factor,
            min_insync_replicas=settings.kafka_min_insync_replicas,
        )
        for topic in topics
        if (service := service_of(topic)) is not None
    ]
