"""Kafka producer and consumer factories with the delivery guarantees clinical events need.

aiokafka binds a client to the running event loop, so call these from async code (the
composition root). Building a client does not connect; ``await client.start()`` does.
"""

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from clinical_platform.settings import BaseServiceSettings


def build_kafka_producer(settings: BaseServiceSettings, **overrides: Any) -> AIOKafkaProducer:
    """Return an unstarted producer that waits for all in-sync replicas and never duplicates."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        # acks=all + idempotence: a retried send must not duplicate or lose a clinical event.
        "acks": "all",
        "enable_idempotence": True,
    }
    return AIOKafkaProducer(**(options | overrides))


def build_kafka_consumer(
    settings: BaseServiceSettings,
    *topics: str,
    group_id: str,
    **overrides: Any,
) -> AIOKafkaConsumer:
    """Return an unstarted consumer that commits explicitly and sees only committed events."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "group_id": group_id,
        # Commit after the projection is written, so a crash re-delivers instead of skipping.
        "enable_auto_commit": False,
        # Events from aborted transactions never happened; projections must not see them.
        "isolation_level": "read_committed",
        "auto_offset_reset": "earliest",
    }
    return AIOKafkaConsumer(*topics, **(options | overrides))
