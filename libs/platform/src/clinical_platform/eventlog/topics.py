"""The event topics: one per service, created at start-up with explicit, durable configs.

Every topic exists before anyone consumes it: its writer creates it at start, and so does each
reader (with the same spec), whichever starts first. A consumer subscribed to a missing topic
would log an ERROR for every metadata refresh until the topic appears.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from clinical_platform.clients.kafka import KafkaConnection, build_admin

logger = logging.getLogger(__name__)


_EVENTS_TOPIC = re.compile(r"clinical\.(?P<service>[^.]+)\.events\.v1")


def events_topic(service: str) -> str:
    """``clinical.<service>.events.v1``: the service's system of record."""
    return f"clinical.{service}.events.v1"


def service_of(topic: str) -> str | None:
    """The service whose event topic ``topic`` is; None for any other topic."""
    matched = _EVENTS_TOPIC.fullmatch(topic)
    return matched["service"] if matched else None


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)


def event_topic_spec(
    service: str, *, partitions: int, replication_factor: int, min_insync_replicas: int
) -> TopicSpec:
    """The configs an event topic must have: it is the clinical record, kept forever."""
    return TopicSpec(
        name=events_topic(service),
        partitions=partitions,
        replication_factor=replication_factor,
        configs={
            "retention.ms": "-1",
            "retention.bytes": "-1",
            "cleanup.policy": "delete",
            "min.insync.replicas": str(min_insync_replicas),
            # Never elect a replica that missed acknowledged writes: losing them is worse than
            # being unavailable.
            "unclean.leader.election.enable": "false",
            "compression.type": "zstd",
        },
    )


async def ensure_topics(kafka: KafkaConnection, specs: Iterable[TopicSpec]) -> None:
    """Create each topic unless it exists (one admin client for all)."""
    specs = list(specs)
    if not specs:
        return
    admin = build_admin(kafka)
    await admin.start()
    try:
        for spec in specs:
            await ensure_topic(admin, spec)
    finally:
        await admin.close()


async def ensure_topic(admin: AIOKafkaAdminClient, spec: TopicSpec) -> int:
    """Create the topic unless it exists; return its actual partition count.

    An existing topic keeps its partition count: changing it would move aggregates to other
    partitions, so a mismatch with the settings is logged and the topic's count wins.
    """
    topic = NewTopic(
        spec.name, spec.partitions, spec.replication_factor, topic_configs=spec.configs
    )
    response = await admin.create_topics([topic])
    for _name, error_code, *details in response.topic_errors:
        if error_code not in (0, TopicAlreadyExistsError.errno):
            raise for_code(error_code)(f"cannot create topic {spec.name}: {details}")
    actual = await partition_count(admin, spec.name)
    if actual != spec.partitions:
        logger.warning(
            "event topic has a different partition count than configured; using the topic's",
            extra={"topic": spec.name, "configured": spec.partitions, "actual": actual},
        )
    return actual


async def partition_count(admin: AIOKafkaAdminClient, topic: str, timeout_s: float = 30) -> int:
    """The topic's partition count, waiting for a topic created a moment ago to show them."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        described = await admin.describe_topics([topic])
        partitions = len(described[0]["partitions"])
        if partitions:
            return partitions
        if asyncio.get_running_loop().time() > deadline:
            msg = f"topic {topic} shows no partitions after {timeout_s:.0f}s"
            raise TimeoutError(msg)
        await asyncio.sleep(0.1)
